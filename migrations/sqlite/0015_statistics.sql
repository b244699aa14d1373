-- Statistics of notification and disposal (issue 13). Keep in step with
-- ../postgres/0015_statistics.sql.
--
-- Every case event, visit, planned stop and grade change is queued by a trigger in the
-- transaction that writes it, with the area it had then; the statistics worker folds
-- queued items into the rollups (`stat_cells`) and deletes them in one transaction, so
-- each is counted once. The rows of `stat_cells` are China days (grain 'd') at the
-- grid, street, district and city levels and months ('m') at the street, district and
-- city levels, by category, severity, department and inspector.
CREATE TABLE stat_queue (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('event', 'visit', 'stop', 'grade')),
    case_id       INTEGER NOT NULL DEFAULT 0,
    seq           INTEGER NOT NULL DEFAULT 0,
    ref_id        INTEGER NOT NULL DEFAULT 0,
    day           TEXT,
    grid_id       INTEGER,
    street_id     INTEGER,
    district_code TEXT
);

CREATE TABLE stat_cells (
    grain         TEXT NOT NULL,
    level         TEXT NOT NULL,
    area          TEXT NOT NULL,
    period        TEXT NOT NULL,
    category      TEXT NOT NULL,
    severity      TEXT NOT NULL,
    department_id INTEGER NOT NULL,
    inspector_id  INTEGER NOT NULL,
    metric        TEXT NOT NULL,
    bucket        TEXT NOT NULL,
    n             INTEGER NOT NULL,
    amount        INTEGER NOT NULL,
    PRIMARY KEY (grain, level, area, period, category, severity, department_id, inspector_id,
                 metric, bucket)
) WITHOUT ROWID;

-- Graded units by area and stars, now: kept by triggers on the units themselves, so
-- that units imported with a grade count as well as units graded by an inspection.
CREATE TABLE stat_stars (
    grid_id       INTEGER NOT NULL,
    street_id     INTEGER NOT NULL,
    district_code TEXT NOT NULL,
    stars         INTEGER NOT NULL,
    n             INTEGER NOT NULL,
    PRIMARY KEY (district_code, street_id, grid_id, stars)
);

-- A case's events are written after its row (a batch updates its cases first; an
-- inspection inserts a case, then its opening event), so the case is there to read.
CREATE TRIGGER stat_queue_events AFTER INSERT ON case_events BEGIN
    INSERT INTO stat_queue (kind, case_id, seq, grid_id, street_id, district_code)
    SELECT 'event', NEW.case_id, NEW.seq, c.grid_id, c.street_id, c.district_code
      FROM cases c WHERE c.id = NEW.case_id;
END;

CREATE TRIGGER stat_queue_visits AFTER INSERT ON inspections BEGIN
    INSERT INTO stat_queue (kind, ref_id, grid_id, street_id, district_code)
    SELECT 'visit', NEW.id, u.grid_id, u.street_id, u.district_code
      FROM units u WHERE u.id = NEW.unit_id;
END;

CREATE TRIGGER stat_queue_stops AFTER INSERT ON plan_stops BEGIN
    INSERT INTO stat_queue (kind, ref_id, seq, day, grid_id, street_id, district_code)
    SELECT 'stop', NEW.unit_id, NEW.inspector_id, NEW.plan_date, u.grid_id, u.street_id,
           u.district_code
      FROM units u WHERE u.id = NEW.unit_id;
END;

CREATE TRIGGER stat_queue_grades AFTER INSERT ON unit_grades BEGIN
    INSERT INTO stat_queue (kind, ref_id, grid_id, street_id, district_code)
    SELECT 'grade', NEW.id, u.grid_id, u.street_id, u.district_code
      FROM units u WHERE u.id = NEW.unit_id;
END;

CREATE TRIGGER stat_stars_insert AFTER INSERT ON units WHEN NEW.stars IS NOT NULL BEGIN
    INSERT INTO stat_stars (district_code, street_id, grid_id, stars, n)
    VALUES (NEW.district_code, NEW.street_id, NEW.grid_id, NEW.stars, 1)
    ON CONFLICT (district_code, street_id, grid_id, stars) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER stat_stars_update AFTER UPDATE OF stars, grid_id, street_id, district_code ON units
WHEN OLD.stars IS NOT NEW.stars OR OLD.grid_id <> NEW.grid_id OR OLD.street_id <> NEW.street_id
     OR OLD.district_code <> NEW.district_code
BEGIN
    UPDATE stat_stars SET n = n - 1
     WHERE OLD.stars IS NOT NULL AND district_code = OLD.district_code
       AND street_id = OLD.street_id AND grid_id = OLD.grid_id AND stars = OLD.stars;
    INSERT INTO stat_stars (district_code, street_id, grid_id, stars, n)
    SELECT NEW.district_code, NEW.street_id, NEW.grid_id, NEW.stars, 1 WHERE NEW.stars IS NOT NULL
    ON CONFLICT (district_code, street_id, grid_id, stars) DO UPDATE SET n = n + 1;
END;

-- A grade change keeps the stars the unit had before it (a unit imported with a grade
-- has no row for it); rows of the past take their previous row's.
ALTER TABLE unit_grades ADD COLUMN stars_before INTEGER;
UPDATE unit_grades SET stars_before = (
    SELECT p.stars FROM unit_grades p
     WHERE p.unit_id = unit_grades.unit_id AND p.id < unit_grades.id
     ORDER BY p.id DESC LIMIT 1);

-- The history so far, queued in order.
INSERT INTO stat_queue (kind, case_id, seq, grid_id, street_id, district_code)
SELECT 'event', e.case_id, e.seq, c.grid_id, c.street_id, c.district_code
  FROM case_events e JOIN cases c ON c.id = e.case_id
 ORDER BY e.case_id, e.seq;
INSERT INTO stat_queue (kind, ref_id, grid_id, street_id, district_code)
SELECT 'visit', i.id, u.grid_id, u.street_id, u.district_code
  FROM inspections i JOIN units u ON u.id = i.unit_id ORDER BY i.id;
INSERT INTO stat_queue (kind, ref_id, seq, day, grid_id, street_id, district_code)
SELECT 'stop', s.unit_id, s.inspector_id, s.plan_date, u.grid_id, u.street_id, u.district_code
  FROM plan_stops s JOIN units u ON u.id = s.unit_id ORDER BY s.plan_date;
INSERT INTO stat_queue (kind, ref_id, grid_id, street_id, district_code)
SELECT 'grade', g.id, u.grid_id, u.street_id, u.district_code
  FROM unit_grades g JOIN units u ON u.id = g.unit_id ORDER BY g.id;
INSERT INTO stat_stars (grid_id, street_id, district_code, stars, n)
SELECT grid_id, street_id, district_code, stars, COUNT(*)
  FROM units WHERE stars IS NOT NULL
 GROUP BY grid_id, street_id, district_code, stars;
