-- The log's lifecycle (issue 9): the prefix of the log older than `keep_in_database` leaves the
-- live database, into archive segments (or dropped after verification). Positions never restart
-- and the live log continues the same hash chain (`log_head` keeps the head).

-- Every archiving step, oldest first (see schema/sqlite/0005_archive.sql). Contiguous and
-- append-only.
CREATE TABLE archive_steps (
    last_position     BIGINT  PRIMARY KEY,
    first_position    BIGINT  NOT NULL,
    event_count       BIGINT  NOT NULL,
    prev_hash         BYTEA   NOT NULL,
    last_hash         BYTEA   NOT NULL,
    first_recorded_at TEXT    NOT NULL,
    last_recorded_at  TEXT    NOT NULL,
    kind              TEXT    NOT NULL CHECK (kind IN ('segment', 'dropped')),
    segment           TEXT,
    sha256            BYTEA,
    recorded_at       TEXT    NOT NULL,
    CHECK (last_position >= first_position AND event_count = last_position - first_position + 1)
);

CREATE FUNCTION archive_steps_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        RAISE EXCEPTION 'archiving steps are append-only: % refused', TG_OP;
    END IF;
    IF NEW.first_position <> COALESCE((SELECT MAX(last_position) FROM archive_steps), 0) + 1 THEN
        RAISE EXCEPTION 'an archiving step must start right after the previous one';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER archive_steps_append_only BEFORE INSERT OR UPDATE OR DELETE ON archive_steps
    FOR EACH ROW EXECUTE FUNCTION archive_steps_check();
CREATE TRIGGER archive_steps_refuse_truncate BEFORE TRUNCATE ON archive_steps
    FOR EACH STATEMENT EXECUTE FUNCTION archive_steps_check();

-- The last version of every stream whose events left the database.
CREATE TABLE archived_streams (
    stream  TEXT   PRIMARY KEY,
    version BIGINT NOT NULL
);

-- DELETE stays refused, except for events an archiving step already accounts for.
CREATE OR REPLACE FUNCTION events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE'
       AND OLD.position <= COALESCE((SELECT MAX(last_position) FROM archive_steps), 0) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the event log is append-only: % refused', TG_OP;
END
$$;
