-- Issue 22, workflow version 6: an order to a unit with no responsible party on record is
-- served in person, and its deadline runs from the service. The case keeps the order's
-- time limit in hours until then.
ALTER TABLE cases ADD COLUMN order_hours BIGINT NOT NULL DEFAULT 0;
