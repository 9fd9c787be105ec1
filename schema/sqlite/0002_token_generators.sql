-- Token generators (opaque, JWT, custom): a client may choose its own, and a token that will
-- never be handed back (renewal per request, JWTs) keeps no sealed value, so `sealed_access`
-- becomes nullable. SQLite cannot drop a NOT NULL in place: the table is rebuilt.
ALTER TABLE clients ADD COLUMN access_token_type TEXT;

CREATE TABLE active_tokens_v2 (
    token_id           TEXT    PRIMARY KEY,
    family_id          TEXT    NOT NULL,
    stream             TEXT    NOT NULL UNIQUE,
    client_id          TEXT    NOT NULL,
    username           TEXT,
    scopes             TEXT    NOT NULL,
    grant_type         TEXT    NOT NULL,
    access_digest      BLOB    NOT NULL UNIQUE,
    issued_at          INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL,
    sealed_access      TEXT,
    refresh_digest     BLOB    UNIQUE,
    refresh_issued_at  INTEGER,
    refresh_expires_at INTEGER,
    sealed_refresh     TEXT
);
INSERT INTO active_tokens_v2 SELECT * FROM active_tokens;
DROP TABLE active_tokens;
ALTER TABLE active_tokens_v2 RENAME TO active_tokens;
CREATE INDEX active_tokens_by_client ON active_tokens (client_id);
CREATE INDEX active_tokens_by_family ON active_tokens (family_id);
