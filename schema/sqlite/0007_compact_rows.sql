-- Row format 2 (issue 11): the same event fields in fewer bytes. The columns that hold a field
-- in two forms have no declared type, so SQLite keeps each value as it was given:
--   row_format 1 (every row written before this migration, copied here unchanged): all text,
--     prev_hash stored;
--   row_format 2: a BLOB in a text column is the compact form of its text
--     (src/store/row_format.rs, checked at write time), `recorded_at` an INTEGER of milliseconds,
--     `event_type` an INTEGER index of a known type, `stream` the INTEGER id of a `streams` row,
--     and `prev_hash` only the first 4 bytes of the hash of the event at position - 1 when it is
--     that hash (the reader takes the rest from that event; a prefix that does not match reads
--     back as the 4 bytes, which the chain check reports).
-- The hash chain covers the field values, not their storage, so both formats verify alike.
CREATE TABLE streams (
    id   INTEGER PRIMARY KEY,
    -- The stream name's compact form (BLOB) or, when that is not shorter, its text.
    name NOT NULL UNIQUE
);

CREATE TABLE events_compact (
    position       INTEGER PRIMARY KEY,
    event_id               NOT NULL UNIQUE,
    stream                 NOT NULL,
    version        INTEGER NOT NULL CHECK (version >= 1),
    event_type             NOT NULL,
    schema_version INTEGER NOT NULL,
    payload                NOT NULL,
    recorded_at            NOT NULL,
    request_id,
    actor_client,
    actor_user,
    grant_type,
    peer,
    prev_hash      BLOB    NOT NULL,
    hash           BLOB    NOT NULL,
    row_format     INTEGER NOT NULL DEFAULT 1 CHECK (row_format IN (1, 2)),
    UNIQUE (stream, version)
);

INSERT INTO events_compact (position, event_id, stream, version, event_type, schema_version,
    payload, recorded_at, request_id, actor_client, actor_user, grant_type, peer, prev_hash, hash,
    row_format)
SELECT position, event_id, stream, version, event_type, schema_version, payload, recorded_at,
    request_id, actor_client, actor_user, grant_type, peer, prev_hash, hash, 1
FROM events ORDER BY position;

DROP TABLE events;
ALTER TABLE events_compact RENAME TO events;

CREATE TRIGGER events_refuse_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only: UPDATE refused');
END;

CREATE TRIGGER events_refuse_delete BEFORE DELETE ON events
WHEN OLD.position > COALESCE((SELECT MAX(last_position) FROM archive_steps), 0)
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only: DELETE refused');
END;

-- Stream names are never rewritten or removed while an event may name them.
CREATE TRIGGER streams_refuse_update BEFORE UPDATE ON streams
BEGIN
    SELECT RAISE(ABORT, 'stream names are append-only: UPDATE refused');
END;

CREATE TRIGGER streams_refuse_delete BEFORE DELETE ON streams
BEGIN
    SELECT RAISE(ABORT, 'stream names are append-only: DELETE refused');
END;
