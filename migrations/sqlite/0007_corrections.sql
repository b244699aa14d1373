-- Corrections after outside checks (issue 9).

-- The version of the last event a person made by a command: optimistic concurrency
-- compares a command's expected version with it, so that events the system adds
-- (timers, rules, attached findings) do not make a person's command stale.
ALTER TABLE cases ADD COLUMN acted_version INTEGER NOT NULL DEFAULT 0;
UPDATE cases SET acted_version = version;

-- Rule jobs queue per case: a case's jobs run oldest first, one at a time. `head` marks
-- the oldest pending job of its case (the only one that may be claimed), kept when jobs
-- are added and finished, so that claiming reads only heads however long the queues
-- behind them are.
ALTER TABLE rule_jobs ADD COLUMN head INTEGER NOT NULL DEFAULT 0;
UPDATE rule_jobs SET head = 1
 WHERE done_at IS NULL
   AND NOT EXISTS (SELECT 1 FROM rule_jobs k
                    WHERE k.case_id = rule_jobs.case_id AND k.id < rule_jobs.id
                      AND k.done_at IS NULL);
DROP INDEX rule_jobs_pending;
CREATE INDEX rule_jobs_heads ON rule_jobs (id) WHERE head = 1 AND done_at IS NULL;
CREATE INDEX rule_jobs_case_pending ON rule_jobs (case_id, id) WHERE done_at IS NULL;

-- A unit's grid comes from its point: a unit outside every grid has grid, community
-- and street 0 (none) and takes its district from the district outline. When grid
-- shapes change, `shape_at` (a generation number, one more than the highest) tells
-- running processes to reload their grid index.
ALTER TABLE grids ADD COLUMN shape_at INTEGER NOT NULL DEFAULT 0;
CREATE INDEX units_ungridded ON units (district_code, id) WHERE grid_id = 0;

-- Corrections of a unit's or a building's point, audited.
CREATE TABLE location_corrections (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('unit', 'building')),
    object_id   INTEGER NOT NULL,
    from_lon    REAL NOT NULL,
    from_lat    REAL NOT NULL,
    to_lon      REAL NOT NULL,
    to_lat      REAL NOT NULL,
    grid_before INTEGER NOT NULL,
    grid_after  INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    at          INTEGER NOT NULL
);
CREATE INDEX location_corrections_object ON location_corrections (kind, object_id, id);

-- A visit that found no one home or was refused entry (拒绝入户) is an attempt, not an
-- inspection: it marks the plan and brings the unit back soon.
ALTER TABLE inspections ADD COLUMN outcome TEXT NOT NULL DEFAULT 'inspected';

-- A plan shown is the plan of the day: routes are stored when first planned (for a
-- group of inspectors, or the city), with the time; stops added during the day are
-- marked extra; `anju serve` plans each day once across processes.
ALTER TABLE plan_routes ADD COLUMN planned_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE plan_stops ADD COLUMN extra INTEGER NOT NULL DEFAULT 0;
CREATE TABLE plan_runs (
    plan_date TEXT PRIMARY KEY,
    at        INTEGER NOT NULL
);
