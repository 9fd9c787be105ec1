-- Row format 2 (issue 11), as schema/sqlite/0007_compact_rows.sql: the same event fields in
-- fewer bytes. PostgreSQL columns have one type each, so a format-2 row leaves the text column
-- of a compact field NULL and fills its compact twin; rows written before this migration are
-- format 1 and untouched (adding nullable columns and dropping NOT NULL rewrite no row).
--   compact_event_id, compact_payload, compact_request_id, compact_actor_client: the text's
--     compact form (src/store/row_format.rs, checked at write time), when shorter;
--   type_code: the index of a known event type; recorded_ms: the time in milliseconds, when
--     it formats back to the same text; stream_id: the `streams` row of the stream;
--   prev_hash: in a format-2 row only the first 4 bytes when it is the hash of the event at
--     position - 1 (the reader takes the rest from that event).
CREATE TABLE streams (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         TEXT   UNIQUE,
    compact_name BYTEA  UNIQUE,
    CHECK ((name IS NULL) <> (compact_name IS NULL))
);

CREATE TRIGGER streams_refuse_update_delete BEFORE UPDATE OR DELETE ON streams
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();

ALTER TABLE events
    ADD COLUMN row_format SMALLINT NOT NULL DEFAULT 1 CHECK (row_format IN (1, 2)),
    ADD COLUMN compact_event_id BYTEA UNIQUE,
    ADD COLUMN stream_id BIGINT,
    ADD COLUMN type_code SMALLINT,
    ADD COLUMN compact_payload BYTEA,
    ADD COLUMN recorded_ms BIGINT,
    ADD COLUMN compact_request_id BYTEA,
    ADD COLUMN compact_actor_client BYTEA,
    ALTER COLUMN event_id DROP NOT NULL,
    ALTER COLUMN stream DROP NOT NULL,
    ALTER COLUMN event_type DROP NOT NULL,
    ALTER COLUMN payload DROP NOT NULL,
    ALTER COLUMN recorded_at DROP NOT NULL,
    ADD CONSTRAINT events_one_event_id CHECK ((event_id IS NULL) <> (compact_event_id IS NULL)),
    ADD CONSTRAINT events_one_stream CHECK ((stream IS NULL) <> (stream_id IS NULL)),
    ADD CONSTRAINT events_one_event_type CHECK ((event_type IS NULL) <> (type_code IS NULL)),
    ADD CONSTRAINT events_one_payload CHECK ((payload IS NULL) <> (compact_payload IS NULL)),
    ADD CONSTRAINT events_one_recorded_at CHECK ((recorded_at IS NULL) <> (recorded_ms IS NULL)),
    ADD CONSTRAINT events_one_request_id CHECK (request_id IS NULL OR compact_request_id IS NULL),
    ADD CONSTRAINT events_one_actor_client CHECK (actor_client IS NULL OR compact_actor_client IS NULL),
    ADD CONSTRAINT events_compact_only_in_format_2 CHECK (row_format = 2 OR (compact_event_id IS NULL
        AND stream_id IS NULL AND type_code IS NULL AND compact_payload IS NULL AND recorded_ms IS NULL
        AND compact_request_id IS NULL AND compact_actor_client IS NULL)),
    ADD CONSTRAINT events_stream_id_version UNIQUE (stream_id, version);
