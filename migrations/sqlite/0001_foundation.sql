-- Anju foundation schema (SQLite). Timestamps are Unix milliseconds (INTEGER), the same
-- on both backends; JSON is TEXT. Keep in step with ../postgres/0001_foundation.sql.

CREATE TABLE districts (
    code      TEXT PRIMARY KEY,
    name_zh   TEXT NOT NULL,
    name_en   TEXT NOT NULL
);

CREATE TABLE streets (
    id            INTEGER PRIMARY KEY,
    code          TEXT NOT NULL UNIQUE,
    district_code TEXT NOT NULL REFERENCES districts(code),
    name          TEXT NOT NULL
);

CREATE TABLE communities (
    id        INTEGER PRIMARY KEY,
    code      TEXT NOT NULL UNIQUE,
    street_id INTEGER NOT NULL REFERENCES streets(id),
    name      TEXT NOT NULL
);

CREATE TABLE grids (
    id           INTEGER PRIMARY KEY,
    code         TEXT NOT NULL UNIQUE,
    community_id INTEGER NOT NULL REFERENCES communities(id),
    name         TEXT NOT NULL
);

CREATE TABLE buildings (
    id      INTEGER PRIMARY KEY,
    grid_id INTEGER NOT NULL REFERENCES grids(id),
    address TEXT NOT NULL,
    lon     REAL NOT NULL,
    lat     REAL NOT NULL
);

CREATE TABLE parties (
    id    INTEGER PRIMARY KEY,
    kind  TEXT NOT NULL CHECK (kind IN ('landlord', 'agent', 'sublandlord')),
    name  TEXT NOT NULL,
    phone TEXT,
    email TEXT
);

-- A unit's place (grid, community, street, district) is copied from its building so
-- that jurisdiction checks and filters need no joins.
CREATE TABLE units (
    id            INTEGER PRIMARY KEY,
    address_code  TEXT NOT NULL UNIQUE,
    building_id   INTEGER NOT NULL REFERENCES buildings(id),
    address       TEXT NOT NULL,
    lon           REAL NOT NULL,
    lat           REAL NOT NULL,
    floor_area    REAL NOT NULL,
    occupants     INTEGER NOT NULL,
    grid_id       INTEGER NOT NULL,
    community_id  INTEGER NOT NULL,
    street_id     INTEGER NOT NULL,
    district_code TEXT NOT NULL,
    party_id      INTEGER REFERENCES parties(id),
    created_at    INTEGER NOT NULL
);
CREATE INDEX units_grid ON units (grid_id);
CREATE INDEX units_party ON units (party_id);

-- Who answered for a unit, and when: the current party has to_at NULL.
CREATE TABLE unit_parties (
    id       INTEGER PRIMARY KEY,
    unit_id  INTEGER NOT NULL REFERENCES units(id),
    party_id INTEGER NOT NULL REFERENCES parties(id),
    role     TEXT NOT NULL CHECK (role IN ('landlord', 'agent', 'sublandlord')),
    from_at  INTEGER NOT NULL,
    to_at    INTEGER
);
CREATE INDEX unit_parties_unit ON unit_parties (unit_id);

CREATE TABLE inspectors (
    id    INTEGER PRIMARY KEY,
    name  TEXT NOT NULL,
    phone TEXT,
    email TEXT,
    shift TEXT NOT NULL DEFAULT 'day'
);

CREATE TABLE inspector_grids (
    inspector_id INTEGER NOT NULL REFERENCES inspectors(id),
    grid_id      INTEGER NOT NULL REFERENCES grids(id),
    PRIMARY KEY (inspector_id, grid_id)
);
CREATE INDEX inspector_grids_grid ON inspector_grids (grid_id);

CREATE TABLE departments (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    district_code TEXT REFERENCES districts(code),
    email         TEXT
);

CREATE TABLE supervisors (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL,
    level         TEXT NOT NULL CHECK (level IN ('city', 'district', 'street')),
    district_code TEXT REFERENCES districts(code),
    street_id     INTEGER REFERENCES streets(id),
    email         TEXT
);

CREATE TABLE api_tokens (
    digest     TEXT PRIMARY KEY,
    role       TEXT NOT NULL,
    subject_id INTEGER NOT NULL,
    label      TEXT,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE TABLE workflow_definitions (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    hash       TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (name, version)
);

CREATE TABLE inspections (
    id           INTEGER PRIMARY KEY,
    unit_id      INTEGER NOT NULL REFERENCES units(id),
    inspector_id INTEGER REFERENCES inspectors(id),
    at           INTEGER NOT NULL,
    lon          REAL NOT NULL,
    lat          REAL NOT NULL,
    distance_m   REAL NOT NULL,
    note         TEXT,
    created_at   INTEGER NOT NULL
);
CREATE INDEX inspections_unit ON inspections (unit_id);

CREATE TABLE cases (
    id            INTEGER PRIMARY KEY,
    definition_id INTEGER NOT NULL REFERENCES workflow_definitions(id),
    unit_id       INTEGER NOT NULL REFERENCES units(id),
    inspection_id INTEGER REFERENCES inspections(id),
    category      TEXT NOT NULL,
    severity      TEXT NOT NULL,
    state         TEXT NOT NULL,
    version       INTEGER NOT NULL,
    address       TEXT NOT NULL,
    district_code TEXT NOT NULL,
    street_id     INTEGER NOT NULL,
    grid_id       INTEGER NOT NULL,
    party_id      INTEGER,
    inspector_id  INTEGER,
    department_id INTEGER,
    deadline_at   INTEGER,
    order_no      INTEGER NOT NULL DEFAULT 0,
    escalation    INTEGER NOT NULL DEFAULT 0,
    reopen_count  INTEGER NOT NULL DEFAULT 0,
    note          TEXT,
    evidence      TEXT NOT NULL,
    lon           REAL NOT NULL,
    lat           REAL NOT NULL,
    opened_at     INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    closed_at     INTEGER,
    -- The case's running timer (a workflow's timers run in disjoint sets of states, so
    -- a case has at most one). timer_seq grows with every timer scheduled, so a claim
    -- on an older timer can tell it is gone.
    timer_seq           INTEGER NOT NULL DEFAULT 0,
    timer_kind          TEXT,
    timer_fire          TEXT,
    timer_due_at        INTEGER,
    timer_claimed_until INTEGER,
    timer_claimed_by    TEXT
);
-- Indexes on columns a transition never changes, so that a transition rewrites the
-- case row but no index entry; state filters apply to the rows an index finds.
CREATE INDEX cases_district ON cases (district_code, id);
CREATE INDEX cases_street ON cases (street_id, id);
CREATE INDEX cases_grid ON cases (grid_id, id);
CREATE INDEX cases_party ON cases (party_id);
CREATE INDEX cases_unit ON cases (unit_id);
-- Due timers, oldest first; a transition moves an entry between two points in time,
-- which stay close together, so a batch touches few pages of it.
CREATE INDEX cases_timer_due ON cases (timer_due_at, id) WHERE timer_due_at IS NOT NULL;

-- The history, outbox and referrals of a case are written only in the
-- transaction that holds the lock on the case, which guarantees their reference to it;
-- they carry no foreign key to cases, which would cost a lookup per row (and on
-- PostgreSQL a cached plan per connection that can turn into a sequential scan).
CREATE TABLE case_events (
    case_id    INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    actor_role TEXT NOT NULL,
    actor_id   TEXT NOT NULL,
    command    TEXT NOT NULL,
    from_state TEXT,
    to_state   TEXT NOT NULL,
    reason     TEXT,
    data       TEXT NOT NULL,
    PRIMARY KEY (case_id, seq)
);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    case_id         INTEGER NOT NULL,
    event_seq       INTEGER NOT NULL,
    recipient_kind  TEXT NOT NULL,
    recipient_id    INTEGER,
    template        TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    claimed_until   INTEGER,
    claimed_by      TEXT,
    delivered_at    INTEGER,
    channel         TEXT,
    last_error      TEXT
);
CREATE INDEX outbox_pending ON outbox (next_attempt_at) WHERE delivered_at IS NULL;
CREATE INDEX outbox_case ON outbox (case_id);

CREATE TABLE referrals (
    id            INTEGER PRIMARY KEY,
    case_id       INTEGER NOT NULL,
    department_id INTEGER NOT NULL REFERENCES departments(id),
    event_seq     INTEGER NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'returned', 'completed', 'withdrawn')),
    referred_at   INTEGER NOT NULL,
    responded_at  INTEGER,
    reason_code   TEXT,
    result        TEXT
);
CREATE INDEX referrals_department ON referrals (department_id, status);
CREATE INDEX referrals_case ON referrals (case_id);

-- A create retried with the same Idempotency-Key returns the stored response.
CREATE TABLE idempotency_keys (
    subject      TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    response     TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (subject, key)
);

-- A batch's script inserts a row here when a case was not at the version the batch
-- decided from; the CHECK then fails the script, which is rolled back whole.
CREATE TABLE write_guard (
    ok INTEGER NOT NULL CHECK (ok = 1)
);
