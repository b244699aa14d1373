-- Issue 22: sign-in codes limited per requester, and nothing handed over in silence.
--
-- Codes are counted per (address, client): a stranger's requests use up the
-- stranger's allowance, never the person's.
CREATE INDEX signin_codes_requester ON signin_codes (address, client, created_at);

-- Wrong codes tried, per address and client: a client past its tries is refused for the
-- address (others are not), so that nobody can lock a person out by guessing.
CREATE TABLE signin_failures (
    id INTEGER PRIMARY KEY,
    address TEXT NOT NULL,
    client  TEXT NOT NULL,
    at      INTEGER NOT NULL
);
CREATE INDEX signin_failures_requester ON signin_failures (address, client, at);

-- Messages an earlier build handed over with no delivery at all (a channel counted from
-- the first outbox step instead of the service's start): pending again, so that each is
-- fanned out now, to its channels or, written before them, kept in the inbox with why.
UPDATE outbox SET delivered_at = NULL, claimed_until = NULL
WHERE delivered_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.outbox_id = outbox.id);
