-- Issue 22, 4: the working-day calendar as data an operator updates without a release
-- (`anju calendar import`), every version kept with when it took effect and who
-- imported it; the one with the highest version is in force, in every process.
CREATE TABLE calendar_versions (
    version     BIGINT PRIMARY KEY,
    -- The file as imported (TOML), its digest and the years it covers.
    source      TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    years       TEXT NOT NULL,
    test_data   BOOLEAN NOT NULL,
    imported_at BIGINT NOT NULL,
    imported_by TEXT NOT NULL
);

-- The warnings to the city's supervisors that the calendar nears its end: once per
-- calendar version and threshold (days left), in whichever process comes first.
CREATE TABLE calendar_warnings (
    version BIGINT NOT NULL,
    days    BIGINT NOT NULL,
    at      BIGINT NOT NULL,
    PRIMARY KEY (version, days)
);

-- When a running timer started counting: a timer in working days is dated again from
-- there when a newer calendar is in force. Timers already running started when their
-- case last entered its state.
ALTER TABLE cases ADD COLUMN timer_from_at BIGINT;
UPDATE cases SET timer_from_at = (
    SELECT MAX(e.at) FROM case_events e
    WHERE e.case_id = cases.id AND e.to_state = cases.state
      AND (e.from_state IS NULL OR e.from_state <> e.to_state)
) WHERE timer_due_at IS NOT NULL;
