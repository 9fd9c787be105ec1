-- Which nodes are serving: each `token-ledger serve` process upserts its row every second and
-- deletes it on a clean shutdown. A row whose beat is older than a few seconds is a node that
-- died (kill -9, lost host). `ledger-replay rebuild` refuses to swap the views while a fresh
-- beat exists. A plain table and the database's own clock: no advisory locks (CockroachDB,
-- YugabyteDB), no trust in the nodes' clocks.
CREATE TABLE node_heartbeats (
    node_id    TEXT        PRIMARY KEY,
    host       TEXT        NOT NULL,
    pid        BIGINT      NOT NULL,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    beat_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
