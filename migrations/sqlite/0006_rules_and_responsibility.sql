-- Escalation rules applied to cases, and landlords' responsibility: rule jobs, the
-- daily sweep's runs, published rule versions, the blacklist, responsibility agreements
-- and rental-insurance policies.

-- A case's priority (raised by rules or supervisors), whether it waits for a
-- supervisor's review, and the last rule step applied to it: a rule job's steps are
-- numbered job * 1024 + action, and a step at or below the mark was applied already, so
-- a retried job does nothing twice.
ALTER TABLE cases ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cases ADD COLUMN review_required INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cases ADD COLUMN rule_mark INTEGER NOT NULL DEFAULT 0;

-- Case events that rules listen to, written in the transition's transaction and
-- worked off by the rule worker (claimed like timers). The daily sweep adds jobs too.
CREATE TABLE rule_jobs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id       INTEGER NOT NULL,
    event_seq     INTEGER,
    on_event      TEXT NOT NULL,
    detail        TEXT,
    created_at    INTEGER NOT NULL,
    claimed_until INTEGER,
    claimed_by    TEXT,
    done_at       INTEGER,
    outcome       TEXT
);
CREATE INDEX rule_jobs_pending ON rule_jobs (id) WHERE done_at IS NULL;
CREATE INDEX rule_jobs_case ON rule_jobs (case_id, id);

-- One row per China day the daily sweep ran, written with its jobs.
CREATE TABLE rule_sweeps (
    day  TEXT PRIMARY KEY,
    at   INTEGER NOT NULL,
    jobs INTEGER NOT NULL
);

-- Rule versions published at run time (the built-in set is version 1 of each rule).
CREATE TABLE rule_versions (
    name         TEXT NOT NULL,
    version      INTEGER NOT NULL,
    spec         TEXT NOT NULL,
    source       TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    published_at INTEGER NOT NULL,
    published_by TEXT NOT NULL,
    PRIMARY KEY (name, version)
);

-- The blacklist (黑名单): proposed by a rule or a person, approved or rejected by a
-- supervisor, appealed by the party, lifted or expired. At most one open entry per party.
CREATE TABLE blacklist (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    party_id         INTEGER NOT NULL REFERENCES parties(id),
    status           TEXT NOT NULL CHECK (status IN ('proposed', 'active', 'appealed', 'rejected', 'lifted')),
    reason           TEXT NOT NULL,
    source           TEXT NOT NULL,
    case_id          INTEGER,
    district_code    TEXT NOT NULL,
    proposed_at      INTEGER NOT NULL,
    decided_by       TEXT,
    decided_at       INTEGER,
    decision_note    TEXT,
    expires_at       INTEGER,
    appeal           TEXT,
    appealed_at      INTEGER,
    appeal_decided_by TEXT,
    appeal_decided_at INTEGER,
    appeal_note      TEXT,
    published        INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX blacklist_open ON blacklist (party_id)
    WHERE status IN ('proposed', 'active', 'appealed');
CREATE INDEX blacklist_party ON blacklist (party_id, id);

-- Safety responsibility agreements (安全管理责任书) signed for a unit.
CREATE TABLE agreements (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    unit_id     INTEGER NOT NULL REFERENCES units(id),
    party_id    INTEGER NOT NULL REFERENCES parties(id),
    signer      TEXT NOT NULL,
    signed_on   TEXT NOT NULL,
    expires_on  TEXT NOT NULL,
    document    TEXT,
    recorded_by TEXT NOT NULL,
    recorded_at INTEGER NOT NULL
);
CREATE INDEX agreements_unit ON agreements (unit_id, expires_on);

-- Rental-insurance policies (出租屋综合保险) per unit.
CREATE TABLE insurance_policies (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    unit_id       INTEGER NOT NULL REFERENCES units(id),
    insurer       TEXT NOT NULL,
    policy_no     TEXT NOT NULL,
    coverage_yuan REAL NOT NULL,
    starts_on     TEXT NOT NULL,
    ends_on       TEXT NOT NULL,
    recorded_by   TEXT NOT NULL,
    recorded_at   INTEGER NOT NULL,
    UNIQUE (insurer, policy_no)
);
CREATE INDEX insurance_unit ON insurance_policies (unit_id);
