-- Tips (issue 13): hazards reported from outside — the 12345 hotline and other
-- integrations through Open311 GeoReport v2, tenants through a unit's placard. A tip
-- is not a case: it lies on a unit (its address code, or the nearest building's unit
-- within 30 m) or only on a grid, enters the covering inspector's plan, and becomes a
-- case only when an inspector confirms it naming the case the visit opened.

-- An integration (the hotline, a street platform): its API key (stored as a SHA-256
-- digest) and where its requests' status changes are pushed.
CREATE TABLE integrations (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    key_digest  TEXT NOT NULL UNIQUE,
    webhook_url TEXT,
    created_at  INTEGER NOT NULL
);

CREATE TABLE tips (
    id             INTEGER PRIMARY KEY,
    source         TEXT NOT NULL CHECK (source IN ('open311', 'placard')),
    integration_id INTEGER REFERENCES integrations(id),
    -- The client's address, for the rate limits; never shown.
    client         TEXT NOT NULL,
    category       TEXT NOT NULL,
    description    TEXT NOT NULL,
    lon            REAL,
    lat            REAL,
    address        TEXT,
    -- How it was placed: 'address_code', 'nearest_building' or 'grid'.
    placed_by      TEXT NOT NULL,
    unit_id        INTEGER REFERENCES units(id),
    grid_id        INTEGER,
    street_id      INTEGER,
    district_code  TEXT NOT NULL,
    -- The reporter's contact: for inspectors and supervisors only.
    reporter_name  TEXT,
    reporter_email TEXT,
    reporter_phone TEXT,
    -- 'open' (waiting for the visit), 'confirmed' (a case), 'dismissed' (nothing found).
    status         TEXT NOT NULL,
    case_id        INTEGER REFERENCES cases(id),
    -- The inspector's note for the reporter (Open311 `status_notes`).
    public_note    TEXT,
    resolved_by    INTEGER,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    -- What was last pushed to the integration's webhook (status, notes, agency), and
    -- when.
    pushed         TEXT,
    pushed_at      INTEGER
);
CREATE INDEX tips_integration ON tips (integration_id, id);
CREATE INDEX tips_unit_open ON tips (unit_id) WHERE status = 'open';
CREATE INDEX tips_client ON tips (client, created_at);
CREATE INDEX tips_case ON tips (case_id);
