-- Evidence (issue 12): uploaded photos and documents. The bytes are stored once per
-- SHA-256 in the blob store (a directory, or an S3-compatible object store for several
-- nodes); each upload is a row of its own with a random id, so that nobody learns
-- whether someone else uploaded the same file. Commands and inspections reference
-- uploads by id.
CREATE TABLE evidence (
    id            TEXT PRIMARY KEY,
    sha256        TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('photo', 'document')),
    media_type    TEXT NOT NULL,
    bytes         BIGINT NOT NULL,
    width         BIGINT,
    height        BIGINT,
    file_name     TEXT NOT NULL,
    -- Who uploaded it: the caller's role and subject (an inspector, a party, a
    -- department …) and the history's actor id (the person, where they signed in).
    owner_role    TEXT NOT NULL,
    owner_subject BIGINT NOT NULL,
    uploaded_by   TEXT NOT NULL,
    uploaded_at   BIGINT NOT NULL,
    -- What the photo's EXIF says: where (WGS-84) and when (the camera's local time,
    -- with its offset when it wrote one).
    lon           DOUBLE PRECISION,
    lat           DOUBLE PRECISION,
    taken_at      TEXT,
    has_thumbnail BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX evidence_owner ON evidence (owner_role, owner_subject);

-- The units whose cases or inspections reference an upload: who may see the upload is
-- judged from the cases of these units (and the history that references it).
CREATE TABLE evidence_units (
    evidence_id TEXT NOT NULL,
    unit_id     BIGINT NOT NULL,
    PRIMARY KEY (evidence_id, unit_id)
);
