-- Streams and their keys. Timestamps are RFC 3339 UTC text; ids are UUID text.
CREATE TABLE streams (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('PENDING', 'ACTIVE', 'ENDED', 'ERROR')),
    created_at  TEXT NOT NULL,
    started_at  TEXT,
    ended_at    TEXT
);
CREATE INDEX streams_status ON streams (status);

CREATE TABLE stream_keys (
    id          TEXT PRIMARY KEY NOT NULL,
    stream_id   TEXT NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    prefix      TEXT NOT NULL,
    key_hash    BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX stream_keys_prefix ON stream_keys (prefix);
CREATE INDEX stream_keys_stream ON stream_keys (stream_id);
