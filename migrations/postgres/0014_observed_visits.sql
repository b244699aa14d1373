-- Visits recorded later than they were made (issue 12): an inspection's `at` is when it
-- was observed on site (a form kept on a phone without network is sent when the
-- network returns), its `created_at` when it was recorded; an inspection the phone
-- gave no position for is recorded at its unit's point and flagged as not located.
ALTER TABLE inspections ADD COLUMN located BOOLEAN NOT NULL DEFAULT TRUE;
