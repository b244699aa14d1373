-- Notices that reach people (issue 11). An outbox message fans out at delivery into
-- deliveries: one per person (or office) and channel, each with its own state,
-- attempts, the server's last answer and a Message-ID derived from the outbox row.
CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY,
    outbox_id       INTEGER NOT NULL REFERENCES outbox(id),
    -- Who it is for: `party:12`, `inspector:3`, `department:5`, `supervisor:2`.
    recipient       TEXT NOT NULL,
    channel         TEXT NOT NULL,
    -- The e-mail address, phone number or URL it goes to.
    address         TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'sent', 'failed', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    claimed_until   INTEGER,
    claimed_by      TEXT,
    answer          TEXT,
    message_id      TEXT NOT NULL,
    sent_at         INTEGER,
    -- When the person read it in their inbox (`GET /api/v1/me/messages`).
    read_at         INTEGER,
    created_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX deliveries_once ON deliveries (outbox_id, channel, address);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state IN ('queued', 'failed');
CREATE INDEX deliveries_dead ON deliveries (id) WHERE state = 'dead';
CREATE INDEX deliveries_inbox ON deliveries (recipient, outbox_id);

-- When each channel was first configured: a message written before a channel existed is
-- not sent on it (no retroactive floods when e-mail is switched on).
CREATE TABLE channels (
    name  TEXT PRIMARY KEY,
    since INTEGER NOT NULL
);
