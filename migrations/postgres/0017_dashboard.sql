-- The supervisor's dashboard (issue 13): each street's outline, the union of its grids'
-- shapes, computed when grids are imported (and again whenever the grids' stamp moved
-- since), and an index for counting open cases by street.
CREATE TABLE street_outlines (
    street_id   BIGINT PRIMARY KEY REFERENCES streets(id),
    -- The grid stamp (shaped grids, last shape change) the outline was computed at.
    grids       BIGINT NOT NULL,
    shape_at    BIGINT NOT NULL,
    -- GeoJSON MultiPolygon, WGS-84.
    geometry    TEXT NOT NULL
);

CREATE INDEX cases_open_by_street ON cases (street_id, severity) WHERE closed_at IS NULL;
