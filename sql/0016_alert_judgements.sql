-- Restatements of closed alert windows (issue 16). An anomaly rule judges each whole
-- hour once, at the first evaluation after it closed; a budget's thresholds are judged
-- once more when its period has closed. What was judged is kept here: a digest of the
-- window's stored calls (calls, unpriced, retried, tokens, known cost) read before
-- judging, and the label sets found (anomalous, over a threshold) with their values.
-- Each cycle the evaluator compares the digests of the windows judged in the last
-- seven days with the store; a window whose calls changed since (a late call, a
-- reprice) is judged again, every change of its figures is an alert_events row in
-- state `restated`, and a label set found only now fires (labels + restated_window).

CREATE TABLE IF NOT EXISTS alert_judgements
(
    alert LowCardinality(String) COMMENT 'Rule name (Prometheus alertname)',
    window_start DateTime64(3, 'UTC') COMMENT 'Start of the judged window (an anomaly rule''s hour, a budget''s period)',
    window_end DateTime64(3, 'UTC') COMMENT 'End of the judged window (exclusive)',
    digest String COMMENT 'calls:unpriced:retried:tokens:known cost of every stored call in the window, read before judging',
    findings String COMMENT 'JSON: fingerprint -> {labels, value} of each label set found (anomalous, over a threshold)',
    judged_at DateTime64(3, 'UTC') COMMENT 'Evaluation time (the data''s time) of this judgement',
    recorded_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(recorded_at)
PARTITION BY toYYYYMM(window_start)
ORDER BY (alert, window_start)
TTL toDateTime(window_start) + INTERVAL 35 DAY
SETTINGS non_replicated_deduplication_window = 10000
COMMENT 'What each alert rule judged of each closed window, to notice restatements';

ALTER TABLE alert_events
    COMMENT COLUMN state 'pending | inactive | firing | cleared | recurred | resolved | restated (only firing and resolved are notified)';

-- A repeat of a firing alert (repeat_interval) is a delivery row at the cycle's time,
-- not at its alert_events row's: join repeats on fingerprint and state.
ALTER TABLE alert_deliveries
    COMMENT COLUMN at 'The alert event''s time (alert_events.at); for a repeat of a firing alert, the evaluation time of the cycle that repeated it';
