-- Landlords' own declarations (issue 13, 自主申报 and 自查自改): a unit's occupancy
-- (rooms and occupants, no tenant's personal data) and the landlord's self-inspection
-- against the grading checklist. Recorded as such and shown to the inspectors; never a
-- grade: units.stars and unit_grades are not touched.
CREATE TABLE unit_declarations (
    id        INTEGER PRIMARY KEY,
    unit_id   INTEGER NOT NULL REFERENCES units(id),
    party_id  INTEGER NOT NULL REFERENCES parties(id),
    kind      TEXT NOT NULL CHECK (kind IN ('occupancy', 'self_inspection')),
    rooms     INTEGER,
    occupants INTEGER,
    -- The self-inspection's answers: {"item code": true|false}, as JSON.
    checklist TEXT,
    note      TEXT,
    at        INTEGER NOT NULL
);
CREATE INDEX unit_declarations_unit ON unit_declarations (unit_id, id);
