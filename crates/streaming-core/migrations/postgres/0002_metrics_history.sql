-- Player beacons on viewer sessions, richer 1-second metrics samples and
-- their 1-minute roll-ups (kept after the raw samples are pruned). The same
-- change as migrations/sqlite/0003_metrics_history.sql, with native types;
-- quality distributions are JSON objects (`{"720p":3}`) as text, like SQLite.
ALTER TABLE viewer_sessions
    ADD COLUMN quality_switches BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN startup_ms       BIGINT,
    ADD COLUMN stalls           BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN stall_ms         BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN errors           BIGINT NOT NULL DEFAULT 0;

ALTER TABLE stream_metrics
    ADD COLUMN quality_distribution TEXT NOT NULL DEFAULT '{}',
    ADD COLUMN buffering_ratio      DOUBLE PRECISION NOT NULL DEFAULT 0,
    ADD COLUMN errors               BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN transcoder_speed     DOUBLE PRECISION;

-- Pruning deletes by age across every stream.
CREATE INDEX stream_metrics_at ON stream_metrics (at);

CREATE TABLE stream_metrics_1m (
    stream_id             UUID NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    minute                TIMESTAMPTZ NOT NULL,
    samples               BIGINT NOT NULL,
    viewers_avg           DOUBLE PRECISION NOT NULL,
    viewers_min           BIGINT NOT NULL,
    viewers_max           BIGINT NOT NULL,
    ingest_kbps_avg       DOUBLE PRECISION NOT NULL,
    ingest_kbps_min       BIGINT NOT NULL,
    ingest_kbps_max       BIGINT NOT NULL,
    egress_kbps_avg       DOUBLE PRECISION NOT NULL,
    buffering_ratio_avg   DOUBLE PRECISION NOT NULL,
    errors                BIGINT NOT NULL,
    transcoder_speed_min  DOUBLE PRECISION,
    quality_distribution  TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (stream_id, minute)
);
CREATE INDEX stream_metrics_1m_minute ON stream_metrics_1m (minute);
