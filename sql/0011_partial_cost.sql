-- Calls priced in part (issue 14): when some dimensions of a call have no price
-- (a token class, a unit such as web_search), the others are still priced.
-- cost_total and every cost_<part> stay NULL until the call is complete, so every
-- existing sum and count treats it as unpriced; what is known is kept beside them:
--   cost_known          the lower bound reports add up: cost_total when the call is
--                       priced, the known part when priced in part, NULL when nothing
--                       could be priced (no entry, service tier, FX rate);
--   cost_known_parts    the known part of each billed dimension (partial calls only);
--   unpriced_dimensions the token classes and units without a price.
-- A reprice that completes the call fills cost_total and the parts and clears these.

ALTER TABLE calls ADD COLUMN IF NOT EXISTS cost_known Nullable(Decimal(38, 18)) DEFAULT cost_total COMMENT 'Lower bound of the cost: cost_total when priced, the known part when priced in part (see unpriced_dimensions), NULL when nothing could be priced' AFTER cost_cache_write_uncached;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS cost_known_parts Map(LowCardinality(String), Decimal(38, 18)) COMMENT 'Known cost per billed dimension of a call priced in part; empty otherwise' AFTER cost_known;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS unpriced_dimensions Array(LowCardinality(String)) COMMENT 'Token classes and units the price book has no price for; empty when priced or when nothing could be priced' AFTER pricing_error;

ALTER TABLE call_cancellations ADD COLUMN IF NOT EXISTS cost_known Nullable(Decimal(38, 18)) DEFAULT cost_total AFTER cost_cache_write_uncached;
ALTER TABLE call_changes ADD COLUMN IF NOT EXISTS cost_known Nullable(Decimal(38, 18)) AFTER cost_cache_write_uncached;

ALTER TABLE call_costs_hourly ADD COLUMN IF NOT EXISTS partly_priced_calls Int64 DEFAULT 0 COMMENT 'Unpriced calls of which a part could be priced (included in unpriced_calls)' AFTER unpriced_calls;
ALTER TABLE call_costs_hourly ADD COLUMN IF NOT EXISTS cost_known Decimal(38, 18) DEFAULT cost_total COMMENT 'Lower bound of the cost: cost_total plus the known part of calls priced in part' AFTER cost_cache_write_uncached;

-- Recreated to carry the new columns (run migrations with the sink stopped).
DROP VIEW IF EXISTS calls_to_call_changes;

CREATE MATERIALIZED VIEW IF NOT EXISTS calls_to_call_changes TO call_changes
AS SELECT
    event_id, task_id, ts, provider, model, scenario_id, environment, owner, role, status,
    service_tier, attempt, retry_of, fallback_from, latency_ms, max_output_tokens,
    input_tokens, cache_read_tokens, cache_write_tokens, cache_write_1h_tokens, output_tokens,
    reasoning_tokens, input_audio_tokens, cache_audio_read_tokens, output_audio_tokens,
    input_image_tokens, output_image_tokens, cost_input, cost_cache_read, cost_cache_write,
    cost_output, cost_reasoning, cost_audio, cost_image, cost_request, cost_units, cost_total,
    cost_cache_read_uncached, cost_cache_write_uncached, cost_known, toInt8(1) AS sign
FROM calls;

DROP VIEW IF EXISTS call_cancellations_to_call_changes;

CREATE MATERIALIZED VIEW IF NOT EXISTS call_cancellations_to_call_changes TO call_changes
AS SELECT
    event_id, task_id, ts, provider, model, scenario_id, environment, owner, role, status,
    service_tier, attempt, retry_of, fallback_from, latency_ms, max_output_tokens,
    input_tokens, cache_read_tokens, cache_write_tokens, cache_write_1h_tokens, output_tokens,
    reasoning_tokens, input_audio_tokens, cache_audio_read_tokens, output_audio_tokens,
    input_image_tokens, output_image_tokens, cost_input, cost_cache_read, cost_cache_write,
    cost_output, cost_reasoning, cost_audio, cost_image, cost_request, cost_units, cost_total,
    cost_cache_read_uncached, cost_cache_write_uncached, cost_known, toInt8(-1) AS sign
FROM call_cancellations;

DROP VIEW IF EXISTS call_costs_hourly_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS call_costs_hourly_mv TO call_costs_hourly
AS SELECT
    toStartOfHour(toDateTime(ts, 'UTC')) AS hour,
    scenario_id,
    environment,
    owner,
    provider,
    model,
    role,
    status,
    service_tier,
    toUInt8(attempt > 1 OR retry_of != '') AS is_retry,
    toUInt8(fallback_from != '') AS is_fallback,
    sum(toInt64(sign)) AS calls,
    sum(sign * toInt64(c.cost_total IS NULL)) AS unpriced_calls,
    sum(sign * toInt64(c.cost_total IS NULL AND c.cost_known IS NOT NULL)) AS partly_priced_calls,
    sum(sign * toInt64(input_tokens)) AS input_tokens,
    sum(sign * toInt64(cache_read_tokens)) AS cache_read_tokens,
    sum(sign * toInt64(cache_write_tokens + cache_write_1h_tokens)) AS cache_write_tokens,
    sum(sign * toInt64(output_tokens)) AS output_tokens,
    sum(sign * toInt64(reasoning_tokens)) AS reasoning_tokens,
    sum(sign * toInt64(input_audio_tokens + cache_audio_read_tokens + output_audio_tokens)) AS audio_tokens,
    sum(sign * toInt64(input_image_tokens + output_image_tokens)) AS image_tokens,
    sum(sign * toInt64(max_output_tokens IS NOT NULL)) AS calls_with_cap,
    sum(sign * toInt64(ifNull(c.output_tokens + c.reasoning_tokens >= c.max_output_tokens, 0))) AS capped_calls,
    sum(sign * toInt64(ifNull(c.max_output_tokens, 0))) AS cap_tokens,
    sum(sign * toInt64(if(c.max_output_tokens IS NULL, 0, c.output_tokens + c.reasoning_tokens))) AS capped_output_tokens,
    sum(sign * toInt64(c.latency_ms IS NOT NULL)) AS latency_calls,
    sum(sign * toInt64(ifNull(c.latency_ms, 0))) AS latency_ms,
    sum(sign * ifNull(cost_input, toDecimal128(0, 18))) AS cost_input,
    sum(sign * ifNull(cost_cache_read, toDecimal128(0, 18))) AS cost_cache_read,
    sum(sign * ifNull(cost_cache_write, toDecimal128(0, 18))) AS cost_cache_write,
    sum(sign * ifNull(cost_output, toDecimal128(0, 18))) AS cost_output,
    sum(sign * ifNull(cost_reasoning, toDecimal128(0, 18))) AS cost_reasoning,
    sum(sign * ifNull(cost_audio, toDecimal128(0, 18))) AS cost_audio,
    sum(sign * ifNull(cost_image, toDecimal128(0, 18))) AS cost_image,
    sum(sign * ifNull(cost_request, toDecimal128(0, 18))) AS cost_request,
    sum(sign * ifNull(cost_units, toDecimal128(0, 18))) AS cost_units,
    sum(sign * ifNull(cost_total, toDecimal128(0, 18))) AS cost_total,
    sum(sign * ifNull(cost_cache_read_uncached, toDecimal128(0, 18))) AS cost_cache_read_uncached,
    sum(sign * ifNull(cost_cache_write_uncached, toDecimal128(0, 18))) AS cost_cache_write_uncached,
    sum(sign * ifNull(cost_known, toDecimal128(0, 18))) AS cost_known
FROM call_changes AS c
GROUP BY hour, scenario_id, environment, owner, provider, model, role, status, service_tier, is_retry, is_fallback;

-- The call chain shows what is known of a call priced in part (columns appended).
CREATE OR REPLACE VIEW v_task_call_chain
AS SELECT
    task_id,
    event_id,
    ts,
    provider,
    model,
    role,
    status,
    attempt,
    retry_of,
    fallback_from,
    latency_ms,
    input_tokens,
    cache_read_tokens,
    cache_write_tokens + cache_write_1h_tokens AS cache_write_tokens,
    output_tokens,
    reasoning_tokens,
    cost_total,
    price_book_version,
    pricing_error,
    cost_known,
    unpriced_dimensions
FROM calls FINAL
COMMENT 'Every call of a task in its chain, one row per call; filter by task_id, order by ts';

-- Reports and BI tools see that a day's cost per accepted outcome is a lower bound
-- (column appended).
CREATE OR REPLACE VIEW v_cost_per_outcome
AS SELECT
    day,
    scenario_id,
    environment,
    n_tasks AS tasks,
    n_accepted AS accepted,
    n_rejected AS rejected,
    n_failed AS failed,
    n_unresolved AS unresolved,
    n_pending AS pending,
    cost AS total_cost,
    cost_accepted AS accepted_cost,
    cost / n_tasks AS cost_per_task,
    if(n_accepted = 0, NULL, cost / n_accepted) AS cost_per_accepted_outcome,
    n_pending = 0 AS final,
    n_unpriced AS unpriced_calls
FROM
(
    SELECT
        day,
        scenario_id,
        environment,
        sum(tasks) AS n_tasks,
        sumIf(tasks, outcome = 'accepted') AS n_accepted,
        sumIf(tasks, outcome = 'rejected') AS n_rejected,
        sumIf(tasks, outcome = 'failed') AS n_failed,
        sumIf(tasks, outcome = '' AND open_deadline <= now64(3)) AS n_unresolved,
        sumIf(tasks, outcome = '' AND open_deadline > now64(3)) AS n_pending,
        sum(total_cost) AS cost,
        sumIf(total_cost, outcome = 'accepted') AS cost_accepted,
        sum(unpriced_calls) AS n_unpriced
    FROM task_outcomes_daily
    GROUP BY day, scenario_id, environment
    HAVING n_tasks != 0
)
COMMENT 'Cost per accepted outcome per day, scenario and environment; final = no task still inside its outcome window; unpriced_calls > 0: its costs are lower bounds';
-- A reprice that completes a call priced in part: its old cost is the part that was
-- known (it was in the task totals), not 0; a call nothing of which was known still
-- counts 0 and is counted in previously_unpriced_calls.
ALTER TABLE call_repricings ADD COLUMN IF NOT EXISTS old_cost_known Nullable(Decimal(38, 18)) DEFAULT old_cost_total COMMENT 'The part of the old cost that was known (old_cost_total when it was priced)' AFTER old_cost_total;

CREATE OR REPLACE VIEW v_reprice_comparison
AS SELECT
    reprice_id,
    min(repriced_at) AS repriced_at,
    provider,
    model,
    old_price_book_version,
    new_price_book_version,
    count() AS calls,
    countIf(old_cost_total IS NULL) AS previously_unpriced_calls,
    sum(ifNull(old_cost_known, toDecimal128(0, 18))) AS old_cost,
    sum(new_cost_total) AS new_cost,
    new_cost - old_cost AS difference,
    any(currency) AS currency
FROM call_repricings
GROUP BY reprice_id, provider, model, old_price_book_version, new_price_book_version;
