-- The PostgreSQL schema: the same log and views as schema/sqlite/, for several nodes on one
-- database. Positions are assigned by the appender under the `log_head` row lock (never by a
-- sequence), so they are gap-free and commit in position order.

-- The event log: append-only (the trigger below refuses UPDATE, DELETE and TRUNCATE).
-- `position` is the global replay order; UNIQUE(stream, version) is the optimistic-concurrency
-- guard. `hash` = SHA-256(prev_hash || the event's fields), see src/store/records.rs `chain_hash`.
CREATE TABLE events (
    position       BIGINT  PRIMARY KEY,
    event_id       TEXT    NOT NULL UNIQUE,
    stream         TEXT    NOT NULL,
    version        BIGINT  NOT NULL CHECK (version >= 1),
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    payload        TEXT    NOT NULL,
    recorded_at    TEXT    NOT NULL,
    request_id     TEXT,
    actor_client   TEXT,
    actor_user     TEXT,
    grant_type     TEXT,
    peer           TEXT,
    prev_hash      BYTEA   NOT NULL,
    hash           BYTEA   NOT NULL,
    UNIQUE (stream, version)
);

CREATE FUNCTION events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % refused', TG_OP;
END
$$;

CREATE TRIGGER events_refuse_update_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();
CREATE TRIGGER events_refuse_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();

-- The log's head: one row, locked FOR UPDATE by every appending transaction from its first
-- statement to COMMIT. It serialises appenders across nodes (the global order and the one hash
-- chain), and a reader that sees head = P has every event up to P committed.
CREATE TABLE log_head (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    position BIGINT  NOT NULL,
    hash     BYTEA   NOT NULL
);
INSERT INTO log_head (id, position, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));

-- Projections, written in the same transaction as the events they follow.
CREATE TABLE checkpoints (
    projection TEXT   PRIMARY KEY,
    position   BIGINT NOT NULL
);
INSERT INTO checkpoints (projection, position) VALUES ('views', 0);

CREATE TABLE clients (
    client_id         TEXT  PRIMARY KEY,
    client_name       TEXT  NOT NULL,
    secret_digest     BYTEA NOT NULL,
    grant_types       TEXT  NOT NULL,
    access_token_type TEXT
);

CREATE TABLE users (
    username_key  TEXT PRIMARY KEY,
    username      TEXT NOT NULL,
    password_hash TEXT NOT NULL
);

-- One row per active token; UNIQUE(stream) enforces at most one active token per key.
CREATE TABLE active_tokens (
    token_id           TEXT   PRIMARY KEY,
    family_id          TEXT   NOT NULL,
    stream             TEXT   NOT NULL UNIQUE,
    client_id          TEXT   NOT NULL,
    username           TEXT,
    scopes             TEXT   NOT NULL,
    grant_type         TEXT   NOT NULL,
    access_digest      BYTEA  NOT NULL UNIQUE,
    issued_at          BIGINT NOT NULL,
    expires_at         BIGINT NOT NULL,
    sealed_access      TEXT,
    refresh_digest     BYTEA  UNIQUE,
    refresh_issued_at  BIGINT,
    refresh_expires_at BIGINT,
    sealed_refresh     TEXT
);
CREATE INDEX active_tokens_by_client ON active_tokens (client_id);
CREATE INDEX active_tokens_by_family ON active_tokens (family_id);

-- Refresh tokens rotated away by the refresh grant, for reuse detection (RFC 9700).
CREATE TABLE rotated_refresh_tokens (
    refresh_digest BYTEA  PRIMARY KEY,
    family_id      TEXT   NOT NULL,
    client_id      TEXT   NOT NULL,
    stream         TEXT   NOT NULL,
    rotated_at     BIGINT NOT NULL
);
CREATE INDEX rotated_refresh_tokens_by_client ON rotated_refresh_tokens (client_id);

-- How far the hash chain was verified at a node's start-up (shared by all nodes).
CREATE TABLE chain_anchor (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    position BIGINT  NOT NULL,
    hash     BYTEA   NOT NULL
);
INSERT INTO chain_anchor (id, position, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));
