-- How far the server has verified the hash chain at start-up: each start checks that the event
-- at `position` still has `hash`, then verifies every event after it, then moves the anchor.
CREATE TABLE chain_anchor (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    position INTEGER NOT NULL,
    hash     BLOB    NOT NULL
);
INSERT INTO chain_anchor (id, position, hash) VALUES (1, 0, zeroblob(32));
