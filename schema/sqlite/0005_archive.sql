-- The log's lifecycle (issue 9): the prefix of the log older than `keep_in_database` leaves the
-- live database, into archive segments (or dropped after verification). Positions never restart
-- and the live log continues the same hash chain.

-- Every archiving step, oldest first: which positions left the database, the hash before the
-- first and after the last, and (kind 'segment') the segment file and its SHA-256. A live log
-- that does not start at position 1 must start right after the last step, chained from its
-- `last_hash`; any other gap is tampering. Steps are contiguous and append-only.
CREATE TABLE archive_steps (
    last_position     INTEGER PRIMARY KEY,
    first_position    INTEGER NOT NULL,
    event_count       INTEGER NOT NULL,
    prev_hash         BLOB    NOT NULL,
    last_hash         BLOB    NOT NULL,
    first_recorded_at TEXT    NOT NULL,
    last_recorded_at  TEXT    NOT NULL,
    kind              TEXT    NOT NULL CHECK (kind IN ('segment', 'dropped')),
    segment           TEXT,
    sha256            BLOB,
    recorded_at       TEXT    NOT NULL,
    CHECK (last_position >= first_position AND event_count = last_position - first_position + 1)
);

CREATE TRIGGER archive_steps_contiguous BEFORE INSERT ON archive_steps
WHEN NEW.first_position <> COALESCE((SELECT MAX(last_position) FROM archive_steps), 0) + 1
BEGIN
    SELECT RAISE(ABORT, 'an archiving step must start right after the previous one');
END;

CREATE TRIGGER archive_steps_refuse_update BEFORE UPDATE ON archive_steps
BEGIN
    SELECT RAISE(ABORT, 'archiving steps are append-only: UPDATE refused');
END;

CREATE TRIGGER archive_steps_refuse_delete BEFORE DELETE ON archive_steps
BEGIN
    SELECT RAISE(ABORT, 'archiving steps are append-only: DELETE refused');
END;

-- The last version of every stream whose events left the database, so that UNIQUE(stream,
-- version) and the per-stream version order continue across the boundary.
CREATE TABLE archived_streams (
    stream  TEXT    PRIMARY KEY,
    version INTEGER NOT NULL
);

-- DELETE stays refused, except for events an archiving step already accounts for: the
-- archiver's recorded path is the only way out of the log.
DROP TRIGGER events_refuse_delete;
CREATE TRIGGER events_refuse_delete BEFORE DELETE ON events
WHEN OLD.position > COALESCE((SELECT MAX(last_position) FROM archive_steps), 0)
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only: DELETE refused');
END;
