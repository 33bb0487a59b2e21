-- Viewer sessions, metrics samples and the quality ladder of each stream.
-- Timestamps are RFC 3339 UTC text with microseconds; ids are UUID text.
CREATE TABLE viewer_sessions (
    id            TEXT PRIMARY KEY NOT NULL,
    stream_id     TEXT NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    protocol      TEXT NOT NULL,
    quality       TEXT,
    user_agent    TEXT,
    started_at    TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL,
    ended_at      TEXT,
    bytes_sent    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX viewer_sessions_stream ON viewer_sessions (stream_id, started_at);

CREATE TABLE stream_metrics (
    stream_id            TEXT NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    at                   TEXT NOT NULL,
    concurrent_viewers   INTEGER NOT NULL,
    ingest_bitrate_kbps  INTEGER NOT NULL,
    egress_bitrate_kbps  INTEGER NOT NULL,
    frames_dropped       INTEGER NOT NULL,
    segments_produced    INTEGER NOT NULL,
    PRIMARY KEY (stream_id, at)
);

CREATE TABLE quality_levels (
    stream_id     TEXT NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    position      INTEGER NOT NULL,
    width         INTEGER,
    height        INTEGER,
    bitrate_kbps  INTEGER,
    frame_rate    REAL,
    codec         TEXT,
    PRIMARY KEY (stream_id, name)
);

-- Newest-first listings.
CREATE INDEX streams_created ON streams (created_at, id);
