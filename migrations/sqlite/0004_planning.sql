-- Daily patrol plans, campaigns and public placards (issue 3).

-- An inspector's daily visits, when not the default (25).
ALTER TABLE inspectors ADD COLUMN capacity INTEGER;

-- The code printed on a unit's placard (挂牌公示) as a QR code: random, so that the
-- public pages cannot be walked by counting.
ALTER TABLE units ADD COLUMN public_code TEXT;
UPDATE units SET public_code = lower(hex(randomblob(6))) WHERE public_code IS NULL;
CREATE UNIQUE INDEX units_public_code ON units (public_code);
CREATE INDEX units_community_stars ON units (community_id, stars);

-- A planned day: one row per date, one per inspector's route, one per stop. A unit is
-- planned at most once a day.
CREATE TABLE plan_days (
    plan_date  TEXT PRIMARY KEY,
    planned_at INTEGER NOT NULL,
    due        INTEGER NOT NULL,
    planned    INTEGER NOT NULL,
    routes     INTEGER NOT NULL,
    length_m   REAL NOT NULL,
    nn_length_m REAL NOT NULL
);
CREATE TABLE plan_routes (
    plan_date    TEXT NOT NULL,
    inspector_id INTEGER NOT NULL,
    shift        TEXT NOT NULL,
    capacity     INTEGER NOT NULL,
    length_m     REAL NOT NULL,
    nn_length_m  REAL NOT NULL,
    PRIMARY KEY (plan_date, inspector_id)
);
CREATE TABLE plan_stops (
    plan_date    TEXT NOT NULL,
    inspector_id INTEGER NOT NULL,
    seq          INTEGER NOT NULL,
    unit_id      INTEGER NOT NULL,
    reason       TEXT NOT NULL,
    overdue_days INTEGER NOT NULL,
    leg_m        REAL NOT NULL,
    PRIMARY KEY (plan_date, inspector_id, seq)
);
CREATE UNIQUE INDEX plan_stops_unit ON plan_stops (plan_date, unit_id);
CREATE TABLE plan_backlog (
    plan_date TEXT NOT NULL,
    grid_id   INTEGER NOT NULL,
    due       INTEGER NOT NULL,
    planned   INTEGER NOT NULL,
    left_over INTEGER NOT NULL,
    PRIMARY KEY (plan_date, grid_id)
);

-- Campaigns (集中行动): every unit of an area, to visit within a date window, with the
-- campaign's own checklist. The units are fixed when the campaign is created.
CREATE TABLE campaigns (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    area       TEXT NOT NULL,
    starts_on  TEXT NOT NULL,
    ends_on    TEXT NOT NULL,
    starts_at  INTEGER NOT NULL,
    ends_at    INTEGER NOT NULL,
    checklist  TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE campaign_units (
    campaign_id   INTEGER NOT NULL,
    unit_id       INTEGER NOT NULL,
    visited_at    INTEGER,
    inspection_id INTEGER,
    hazards       INTEGER NOT NULL DEFAULT 0,
    checks        TEXT,
    PRIMARY KEY (campaign_id, unit_id)
);
CREATE INDEX campaign_units_unit ON campaign_units (unit_id);
