-- The views' state at an archiving step's end (see schema/sqlite/0006_archive_snapshots.sql):
-- a snapshot file in the archive folder, named here in the step's own transaction.
CREATE TABLE archive_snapshots (
    last_position BIGINT PRIMARY KEY REFERENCES archive_steps (last_position),
    file          TEXT   NOT NULL,
    sha256        BYTEA  NOT NULL,
    row_count     BIGINT NOT NULL
);

CREATE FUNCTION archive_snapshots_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'archive snapshots are append-only: % refused', TG_OP;
END
$$;

CREATE TRIGGER archive_snapshots_append_only BEFORE UPDATE OR DELETE ON archive_snapshots
    FOR EACH ROW EXECUTE FUNCTION archive_snapshots_refuse();
CREATE TRIGGER archive_snapshots_refuse_truncate BEFORE TRUNCATE ON archive_snapshots
    FOR EACH STATEMENT EXECUTE FUNCTION archive_snapshots_refuse();
