-- Player beacons on viewer sessions, richer 1-second metrics samples and
-- their 1-minute roll-ups (kept after the raw samples are pruned).
-- Timestamps are RFC 3339 UTC text with microseconds; ids are UUID text;
-- quality distributions are JSON objects (`{"720p":3}`) as text.
ALTER TABLE viewer_sessions ADD COLUMN quality_switches INTEGER NOT NULL DEFAULT 0;
ALTER TABLE viewer_sessions ADD COLUMN startup_ms INTEGER;
ALTER TABLE viewer_sessions ADD COLUMN stalls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE viewer_sessions ADD COLUMN stall_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE viewer_sessions ADD COLUMN errors INTEGER NOT NULL DEFAULT 0;

ALTER TABLE stream_metrics ADD COLUMN quality_distribution TEXT NOT NULL DEFAULT '{}';
ALTER TABLE stream_metrics ADD COLUMN buffering_ratio REAL NOT NULL DEFAULT 0;
ALTER TABLE stream_metrics ADD COLUMN errors INTEGER NOT NULL DEFAULT 0;
ALTER TABLE stream_metrics ADD COLUMN transcoder_speed REAL;

-- Pruning deletes by age across every stream.
CREATE INDEX stream_metrics_at ON stream_metrics (at);

CREATE TABLE stream_metrics_1m (
    stream_id             TEXT NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    minute                TEXT NOT NULL,
    samples               INTEGER NOT NULL,
    viewers_avg           REAL NOT NULL,
    viewers_min           INTEGER NOT NULL,
    viewers_max           INTEGER NOT NULL,
    ingest_kbps_avg       REAL NOT NULL,
    ingest_kbps_min       INTEGER NOT NULL,
    ingest_kbps_max       INTEGER NOT NULL,
    egress_kbps_avg       REAL NOT NULL,
    buffering_ratio_avg   REAL NOT NULL,
    errors                INTEGER NOT NULL,
    transcoder_speed_min  REAL,
    quality_distribution  TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (stream_id, minute)
);
CREATE INDEX stream_metrics_1m_minute ON stream_metrics_1m (minute);
