-- The directory's generation: bumped by every import of registry records (inspectors and
-- their grids, supervisors, departments, parties), so that a process that caches
-- callers' scopes reads it with each token and resolves a scope again once it moved.
CREATE TABLE directory_generation (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO directory_generation (id, generation) VALUES (1, 0);
