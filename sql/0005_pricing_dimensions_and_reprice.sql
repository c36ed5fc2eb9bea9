-- Every billing dimension on the call row, and repricing after a price-book correction.
--
-- Calls gain the owner the gateway reported (price overlays match on it), non-token
-- units and their cost, the list currency and FX rate when a price was converted,
-- the overlay that applied, and the reprice that wrote the row ('' = priced by stage 1).
-- A reprice inserts the call again with its new price: calls is a ReplacingMergeTree
-- without a version column, so the last inserted row wins (read with FINAL).

ALTER TABLE calls ADD COLUMN IF NOT EXISTS owner LowCardinality(String) DEFAULT '' COMMENT 'Owner as the call reported it (tasks.owner is authoritative)' AFTER environment;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS units Map(LowCardinality(String), Decimal(38, 9)) COMMENT 'Non-token usage by unit: query, evaluation, tool_call, gpu_second, ...' AFTER reasoning_tokens;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS cost_units Nullable(Decimal(38, 18)) COMMENT 'Cost of the non-token units' AFTER cost_request;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS list_currency LowCardinality(String) DEFAULT '' COMMENT 'Currency of the price entry; costs are converted to currency' AFTER currency;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS fx_rate Nullable(Decimal(38, 18)) COMMENT 'list_currency -> currency rate used; NULL when no conversion' AFTER list_currency;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS price_overlay LowCardinality(String) DEFAULT '' COMMENT 'Negotiated-price overlay that applied; empty for list prices' AFTER price_book_version;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS reprice_id String DEFAULT '' COMMENT 'The reprice that wrote this price; empty when priced by stage 1' AFTER attributes;

-- A task's row carries what reprices changed in it, so that a later snapshot
-- from stage 1 (which knows nothing of reprices) keeps the corrected total.
-- The row version is events * 2^20 + revision: stage 1 moves the first part,
-- each reprice of the task the second.
ALTER TABLE task_changes ADD COLUMN IF NOT EXISTS reprice_cost_delta Decimal(38, 18) DEFAULT 0 COMMENT 'Sum over reprices of (new - old) cost of this task''s calls; included in total_cost' AFTER outcome_deadline;
ALTER TABLE task_changes ADD COLUMN IF NOT EXISTS reprice_priced_calls UInt32 DEFAULT 0 COMMENT 'Calls unpriced by stage 1 that a reprice priced; already subtracted from unpriced_calls' AFTER reprice_cost_delta;
ALTER TABLE task_changes COMMENT COLUMN version 'Distinct events in the snapshot * 2^20 + number of reprices applied to the task';
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS reprice_cost_delta Decimal(38, 18) DEFAULT 0 COMMENT 'Sum over reprices of (new - old) cost of this task''s calls; included in total_cost' AFTER outcome_deadline;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS reprice_priced_calls UInt32 DEFAULT 0 COMMENT 'Calls unpriced by stage 1 that a reprice priced; already subtracted from unpriced_calls' AFTER reprice_cost_delta;
ALTER TABLE tasks COMMENT COLUMN version 'Distinct events applied * 2^20 + number of reprices applied; the highest version is the current row';

-- Recreated to carry the new columns (run migrations with the sink stopped).
DROP VIEW IF EXISTS task_changes_to_tasks;

CREATE MATERIALIZED VIEW IF NOT EXISTS task_changes_to_tasks TO tasks
AS SELECT
    task_id, version, scenario_id, environment, owner, first_event_at, last_event_at,
    started_at, completed_at, calls, failed_calls, retried_calls, fallback_calls,
    unpriced_calls, total_cost, input_tokens, cache_read_tokens, cache_write_tokens,
    output_tokens, reasoning_tokens, outcome, outcome_source, outcome_at, outcome_deadline,
    reprice_cost_delta, reprice_priced_calls, changed_at AS ingested_at
FROM task_changes
WHERE sign = 1;

CREATE TABLE IF NOT EXISTS call_repricings
(
    reprice_id String COMMENT 'One run of costflow reprice',
    event_id String,
    task_id String,
    ts DateTime64(3, 'UTC') COMMENT 'Event time of the call',
    provider LowCardinality(String),
    model LowCardinality(String),
    old_price_book_version LowCardinality(String) COMMENT 'Version that priced the call before',
    new_price_book_version LowCardinality(String) COMMENT 'Version that priced it in this reprice',
    old_cost_total Nullable(Decimal(38, 18)) COMMENT 'NULL when the call was unpriced before',
    new_cost_total Decimal(38, 18),
    currency LowCardinality(String),
    repriced_at DateTime64(3, 'UTC') DEFAULT now64(3),
    plan_id String COMMENT 'The sink batch that wrote this row (see sink_plans)'
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (reprice_id, task_id, event_id)
SETTINGS non_replicated_deduplication_window = 10000
COMMENT 'Every price change a reprice made: the call under the old and the new price-book version';

CREATE VIEW IF NOT EXISTS v_reprice_comparison
AS SELECT
    reprice_id,
    min(repriced_at) AS repriced_at,
    provider,
    model,
    old_price_book_version,
    new_price_book_version,
    count() AS calls,
    countIf(old_cost_total IS NULL) AS previously_unpriced_calls,
    sum(ifNull(old_cost_total, toDecimal128(0, 18))) AS old_cost,
    sum(new_cost_total) AS new_cost,
    new_cost - old_cost AS difference,
    any(currency) AS currency
FROM call_repricings
GROUP BY reprice_id, provider, model, old_price_book_version, new_price_book_version;
