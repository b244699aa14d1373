-- Rectification orders as documents (issue 12): each order a case issues gets a document
-- number (文书编号) of its issuing office (the district's rental office) and year, in
-- the transaction that issues it: 天河区安居整改〔2026〕第17号.
CREATE TABLE document_counters (
    office TEXT NOT NULL,
    year   BIGINT NOT NULL,
    last   BIGINT NOT NULL,
    PRIMARY KEY (office, year)
);

CREATE TABLE order_documents (
    case_id     BIGINT NOT NULL,
    order_no    BIGINT NOT NULL,
    -- The event that issued it.
    event_seq   BIGINT NOT NULL,
    office      TEXT NOT NULL,
    year        BIGINT NOT NULL,
    number      BIGINT NOT NULL,
    document_no TEXT NOT NULL,
    issued_at   BIGINT NOT NULL,
    PRIMARY KEY (case_id, order_no),
    UNIQUE (office, year, number)
);
