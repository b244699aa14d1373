-- Star grading and patrol cycles (issue 3). A unit's grade comes from its latest
-- checklist and its open hazards; its next patrol from its grade, its last inspection
-- and its last closed case. Units whose occupants are out by day are visited on the
-- evening shift.
ALTER TABLE units ADD COLUMN stars INTEGER;
ALTER TABLE units ADD COLUMN score REAL;
ALTER TABLE units ADD COLUMN checklist TEXT;
ALTER TABLE units ADD COLUMN last_inspected_at INTEGER;
ALTER TABLE units ADD COLUMN last_closed_at INTEGER;
ALTER TABLE units ADD COLUMN next_due_at INTEGER;
ALTER TABLE units ADD COLUMN evening_only BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX units_due ON units (grid_id, next_due_at);

-- Every change of a unit's grade, with its reasons.
CREATE TABLE unit_grades (
    id            INTEGER PRIMARY KEY,
    unit_id       INTEGER NOT NULL,
    stars         INTEGER,
    score         REAL,
    reasons       TEXT NOT NULL,
    cause         TEXT NOT NULL,
    inspection_id INTEGER,
    at            INTEGER NOT NULL
);
CREATE INDEX unit_grades_unit ON unit_grades (unit_id, id);
