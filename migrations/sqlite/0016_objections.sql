-- Objections and extensions (issue 13, workflow version 5): the last order of a case
-- objected to (or asked more time for), so that an order is objected to once.
ALTER TABLE cases ADD COLUMN objected_order INTEGER NOT NULL DEFAULT 0;
