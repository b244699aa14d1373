-- Tokens that expire (issue 11): a token is refused from its expiry on; NULL never expires
-- (tokens made before this migration).
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;
