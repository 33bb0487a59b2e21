-- The whole schema on PostgreSQL: the same tables as migrations/sqlite, with
-- native types (uuid, timestamptz, bytea). Keep the two folders in step.
CREATE TABLE streams (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('PENDING', 'ACTIVE', 'ENDED', 'ERROR')),
    created_at  TIMESTAMPTZ NOT NULL,
    started_at  TIMESTAMPTZ,
    ended_at    TIMESTAMPTZ
);
CREATE INDEX streams_status ON streams (status);
CREATE INDEX streams_created ON streams (created_at, id);

CREATE TABLE stream_keys (
    id          UUID PRIMARY KEY,
    stream_id   UUID NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    prefix      TEXT NOT NULL,
    key_hash    BYTEA NOT NULL CHECK (length(key_hash) = 32),
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX stream_keys_prefix ON stream_keys (prefix);
CREATE INDEX stream_keys_stream ON stream_keys (stream_id);

CREATE TABLE viewer_sessions (
    id            UUID PRIMARY KEY,
    stream_id     UUID NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    protocol      TEXT NOT NULL,
    quality       TEXT,
    user_agent    TEXT,
    started_at    TIMESTAMPTZ NOT NULL,
    last_seen_at  TIMESTAMPTZ NOT NULL,
    ended_at      TIMESTAMPTZ,
    bytes_sent    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX viewer_sessions_stream ON viewer_sessions (stream_id, started_at);

CREATE TABLE stream_metrics (
    stream_id            UUID NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    at                   TIMESTAMPTZ NOT NULL,
    concurrent_viewers   BIGINT NOT NULL,
    ingest_bitrate_kbps  BIGINT NOT NULL,
    egress_bitrate_kbps  BIGINT NOT NULL,
    frames_dropped       BIGINT NOT NULL,
    segments_produced    BIGINT NOT NULL,
    PRIMARY KEY (stream_id, at)
);

CREATE TABLE quality_levels (
    stream_id     UUID NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    position      BIGINT NOT NULL,
    width         BIGINT,
    height        BIGINT,
    bitrate_kbps  BIGINT,
    frame_rate    DOUBLE PRECISION,
    codec         TEXT,
    PRIMARY KEY (stream_id, name)
);
