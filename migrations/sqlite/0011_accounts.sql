-- People (issue 11): the persons who sign in, read their inbox and receive messages, each
-- acting in one role for one subject (a landlord or agent for their party, an inspector,
-- a department's officer (执法人员) for their department, a supervisor). One address may
-- belong to several accounts (an agent for many landlords); the person chooses which to
-- act as when signing in. Accounts of register people (parties, inspectors, supervisors)
-- are written with the register's rows; officers come from their own registry records.
CREATE TABLE accounts (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('landlord', 'inspector', 'department', 'supervisor')),
    subject_id  INTEGER NOT NULL,
    -- Lower-case e-mail address; phone as digits (a leading + kept).
    email       TEXT,
    phone       TEXT,
    -- The channels the person wants messages on, comma-separated; NULL: every channel
    -- they have an address on.
    channels    TEXT,
    -- One daily digest instead of single messages (referrals, orders of critical
    -- hazards and sign-in codes never wait for it).
    digest      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  INTEGER NOT NULL,
    disabled_at INTEGER
);
CREATE INDEX accounts_email ON accounts (email) WHERE email IS NOT NULL;
CREATE INDEX accounts_phone ON accounts (phone) WHERE phone IS NOT NULL;
CREATE INDEX accounts_subject ON accounts (role, subject_id);
-- The few accounts whose preferences differ from the default, read once per outbox batch.
CREATE INDEX accounts_preferences ON accounts (subject_id) WHERE channels IS NOT NULL OR digest;

INSERT INTO accounts (name, role, subject_id, email, phone, created_at)
SELECT name, 'landlord', id, lower(trim(email)), trim(phone), 0 FROM parties
WHERE email IS NOT NULL OR phone IS NOT NULL;
INSERT INTO accounts (name, role, subject_id, email, phone, created_at)
SELECT name, 'inspector', id, lower(trim(email)), trim(phone), 0 FROM inspectors
WHERE email IS NOT NULL OR phone IS NOT NULL;
INSERT INTO accounts (name, role, subject_id, email, phone, created_at)
SELECT name, 'supervisor', id, lower(trim(email)), NULL, 0 FROM supervisors
WHERE email IS NOT NULL;

-- Sign-in codes: single use, short-lived, by digest (the code itself is never stored).
-- A code is written for every request, registered address or not, so that the rate
-- limits count the same and the answer cannot tell the two apart.
CREATE TABLE signin_codes (
    id         INTEGER PRIMARY KEY,
    address    TEXT NOT NULL,
    digest     TEXT NOT NULL,
    client     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    failures   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX signin_codes_address ON signin_codes (address, created_at);
CREATE INDEX signin_codes_client ON signin_codes (client, created_at);

-- The person behind a session token (NULL for tokens an operator made for an office).
ALTER TABLE api_tokens ADD COLUMN account_id INTEGER;

-- Deliveries held for a person's daily digest (they go out together at 18:00 China time).
ALTER TABLE deliveries ADD COLUMN digest BOOLEAN NOT NULL DEFAULT FALSE;
