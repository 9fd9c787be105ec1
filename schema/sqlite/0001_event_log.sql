-- The event log: the source of truth. Append-only; the triggers below refuse UPDATE and DELETE.
-- `position` is the global replay order; UNIQUE(stream, version) is the optimistic-concurrency
-- guard. `hash` = SHA-256(prev_hash || the event's fields), see src/store/log.rs `chain_hash`.
CREATE TABLE events (
    position       INTEGER PRIMARY KEY,
    event_id       TEXT    NOT NULL UNIQUE,
    stream         TEXT    NOT NULL,
    version        INTEGER NOT NULL CHECK (version >= 1),
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    payload        TEXT    NOT NULL,
    recorded_at    TEXT    NOT NULL,
    request_id     TEXT,
    actor_client   TEXT,
    actor_user     TEXT,
    grant_type     TEXT,
    peer           TEXT,
    prev_hash      BLOB    NOT NULL,
    hash           BLOB    NOT NULL,
    UNIQUE (stream, version)
);

CREATE TRIGGER events_refuse_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only: UPDATE refused');
END;

CREATE TRIGGER events_refuse_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only: DELETE refused');
END;

-- Projections, written in the same transaction as the events they follow.
CREATE TABLE checkpoints (
    projection TEXT    PRIMARY KEY,
    position   INTEGER NOT NULL
);
INSERT INTO checkpoints (projection, position) VALUES ('views', 0);

CREATE TABLE clients (
    client_id     TEXT PRIMARY KEY,
    client_name   TEXT NOT NULL,
    secret_digest BLOB NOT NULL,
    grant_types   TEXT NOT NULL
);

CREATE TABLE users (
    username_key  TEXT PRIMARY KEY,
    username      TEXT NOT NULL,
    password_hash TEXT NOT NULL
);

-- One row per active token; UNIQUE(stream) enforces at most one active token per key.
CREATE TABLE active_tokens (
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
    sealed_access      TEXT    NOT NULL,
    refresh_digest     BLOB    UNIQUE,
    refresh_issued_at  INTEGER,
    refresh_expires_at INTEGER,
    sealed_refresh     TEXT
);
CREATE INDEX active_tokens_by_client ON active_tokens (client_id);
CREATE INDEX active_tokens_by_family ON active_tokens (family_id);

-- Refresh tokens rotated away by the refresh grant, for reuse detection (RFC 9700).
CREATE TABLE rotated_refresh_tokens (
    refresh_digest BLOB    PRIMARY KEY,
    family_id      TEXT    NOT NULL,
    client_id      TEXT    NOT NULL,
    stream         TEXT    NOT NULL,
    rotated_at     INTEGER NOT NULL
);
CREATE INDEX rotated_refresh_tokens_by_client ON rotated_refresh_tokens (client_id);
