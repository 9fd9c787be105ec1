-- The authorization code flow (issue 10). Views folded from the Code*, Session* and Consent*
-- events (src/store/fold.rs); codes and session ids are kept only as SHA-256 digests.

-- A client's redirect URIs, public flag and PKCE rules, as the JSON of `ClientOAuth`.
ALTER TABLE clients ADD COLUMN oauth TEXT NOT NULL DEFAULT '{}';

-- Every code until it expires; `status` is active, redeemed or burned. `issued` is the JSON of
-- the CodeIssued event (client, user, scopes, redirect URI, PKCE challenge, nonce, times).
CREATE TABLE authorization_codes (
    code_digest BYTEA  PRIMARY KEY,
    client_id   TEXT   NOT NULL,
    issued      TEXT   NOT NULL,
    status      TEXT   NOT NULL,
    family_id   TEXT,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX authorization_codes_by_client ON authorization_codes (client_id);

-- Live login sessions; the cookie carries the value, the table its digest.
CREATE TABLE login_sessions (
    session_digest BYTEA  PRIMARY KEY,
    username       TEXT   NOT NULL,
    auth_time      BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL
);

-- Consent remembered with "approve always", per user and client.
CREATE TABLE consents (
    username_key TEXT NOT NULL,
    client_id    TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    PRIMARY KEY (username_key, client_id)
);
