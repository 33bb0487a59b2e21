-- Crash recovery and the readiness write probe; the same change as
-- migrations/sqlite/0004_recovery.sql, with native types.
-- `streams.node_id`: the node (its id is kept in DATA_DIR/node_id) that last
-- made the stream ACTIVE; at start a node ends the streams it left ACTIVE,
-- never those of the other nodes sharing the database.
ALTER TABLE streams ADD COLUMN node_id TEXT;
CREATE INDEX streams_active_node ON streams (node_id) WHERE status = 'ACTIVE';

-- Open viewer sessions, found quickly when their streams are ended.
CREATE INDEX viewer_sessions_open ON viewer_sessions (stream_id) WHERE ended_at IS NULL;

-- One row that `/ready` rewrites in a committed transaction: proof that the
-- database can take a write right now.
CREATE TABLE health_probe (
    id  SMALLINT PRIMARY KEY,
    at  TIMESTAMPTZ NOT NULL
);
