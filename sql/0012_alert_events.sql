-- Alert history (issue 16): every firing and resolution `costflow alerts run`
-- decided, and the deliveries of each to each receiver. The evaluator rebuilds its
-- state from alert_events after a restart (firing instances are the ones whose latest
-- event is a firing) and re-delivers what alert_deliveries does not hold (an outbox),
-- so a restart neither re-sends a firing nor loses a resolution.
-- Readable by BI: one row per event; labels and details as maps.

CREATE TABLE IF NOT EXISTS alert_events
(
    at DateTime64(3, 'UTC') COMMENT 'Evaluation time (the data''s time) that decided the event',
    alert LowCardinality(String) COMMENT 'Rule name (Prometheus alertname)',
    kind LowCardinality(String) COMMENT 'budget | anomaly | unpriced | ...',
    fingerprint String COMMENT 'Hash of the alert name and labels: one alert instance',
    labels Map(String, String),
    state LowCardinality(String) COMMENT 'firing | resolved',
    starts_at DateTime64(3, 'UTC') COMMENT 'When the instance started firing',
    ends_at Nullable(DateTime64(3, 'UTC')) COMMENT 'When it resolved (resolved events only)',
    value String COMMENT 'The observed value, as exact decimal text (money in the book currency)',
    expected String COMMENT 'What the rule expected (threshold, baseline), decimal text or empty',
    impact Nullable(Decimal(38, 18)) COMMENT 'Money at stake, in the price book currency, when the kind can say',
    severity LowCardinality(String),
    details Map(String, String) COMMENT 'Kind-specific figures: period, z, forecast overrun, ...',
    recorded_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (alert, fingerprint, at, state)
SETTINGS non_replicated_deduplication_window = 10000
COMMENT 'Alert firings and resolutions; the evaluator''s state is rebuilt from it';

CREATE TABLE IF NOT EXISTS alert_deliveries
(
    receiver LowCardinality(String),
    fingerprint String,
    at DateTime64(3, 'UTC') COMMENT 'The alert event''s time (alert_events.at)',
    state LowCardinality(String),
    delivered_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (receiver, fingerprint, at, state)
SETTINGS non_replicated_deduplication_window = 10000
COMMENT 'Which alert events each receiver acknowledged';
