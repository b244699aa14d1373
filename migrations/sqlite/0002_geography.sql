-- Geography (issue 3): inspections far from their unit are flagged off-site, and the
-- datum the inspector's device reported is kept; grids carry their shape.
ALTER TABLE inspections ADD COLUMN off_site BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE inspections ADD COLUMN crs TEXT NOT NULL DEFAULT 'wgs84';
CREATE INDEX inspections_off_site ON inspections (inspector_id, at) WHERE off_site;
CREATE INDEX inspections_inspector ON inspections (inspector_id, at);

-- The units of a building, for the duplicate guard.
CREATE INDEX units_building ON units (building_id);

-- A grid's shape: a GeoJSON Polygon or MultiPolygon in WGS-84.
ALTER TABLE grids ADD COLUMN geometry TEXT;
