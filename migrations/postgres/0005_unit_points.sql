-- A narrow copy of every unit's position, in id order: `anju serve` reads all of them
-- at start-up to build its spatial index, and scanning this index instead of the wide
-- units table reads about a tenth of the pages.
CREATE INDEX units_points ON units (id, lon, lat);
