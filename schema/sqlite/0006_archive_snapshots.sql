-- The views' state at an archiving step's end (issues 9 and 11): a snapshot file in the archive
-- folder (src/archive/snapshot.rs), written and fsynced before the row that names it is recorded
-- in the step's own transaction. `ledger-replay rebuild` after archiving starts from the last
-- one and folds the live tail. A file no row names (a crash before the step) is ignored.
CREATE TABLE archive_snapshots (
    last_position INTEGER PRIMARY KEY REFERENCES archive_steps (last_position),
    file          TEXT    NOT NULL,
    sha256        BLOB    NOT NULL,
    row_count     INTEGER NOT NULL
);

CREATE TRIGGER archive_snapshots_refuse_update BEFORE UPDATE ON archive_snapshots
BEGIN
    SELECT RAISE(ABORT, 'archive snapshots are append-only: UPDATE refused');
END;

CREATE TRIGGER archive_snapshots_refuse_delete BEFORE DELETE ON archive_snapshots
BEGIN
    SELECT RAISE(ABORT, 'archive snapshots are append-only: DELETE refused');
END;
