-- Rectification orders as documents (issue 12): each order a case issues gets a document
-- number (文书编号) of its issuing office (the district's rental office) and year, in
-- the transaction that issues it: 天河区安居整改〔2026〕第17号.
CREATE TABLE document_counters (
    office TEXT NOT NULL,
    year   INTEGER NOT NULL,
    last   INTEGER NOT NULL,
    PRIMARY KEY (office, year)
);

CREATE TABLE order_documents (
    case_id     INTEGER NOT NULL,
    order_no    INTEGER NOT NULL,
    -- The event that issued it.
    event_seq   INTEGER NOT NULL,
    office      TEXT NOT NULL,
    year        INTEGER NOT NULL,
    number      INTEGER NOT NULL,
    document_no TEXT NOT NULL,
    issued_at   INTEGER NOT NULL,
    PRIMARY KEY (case_id, order_no),
    UNIQUE (office, year, number)
);
