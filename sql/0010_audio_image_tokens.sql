-- Audio and image token classes (contract: input_audio_tokens, cache_audio_read_tokens,
-- output_audio_tokens, input_image_tokens, output_image_tokens), disjoint from the
-- text classes and billed at their own rates; their costs are cost_audio and
-- cost_image, part of cost_total. Rows from before have none (0, or NULL if unpriced).

ALTER TABLE calls ADD COLUMN IF NOT EXISTS input_audio_tokens UInt64 DEFAULT 0 AFTER reasoning_tokens;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS cache_audio_read_tokens UInt64 DEFAULT 0 AFTER input_audio_tokens;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS output_audio_tokens UInt64 DEFAULT 0 AFTER cache_audio_read_tokens;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS input_image_tokens UInt64 DEFAULT 0 AFTER output_audio_tokens;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS output_image_tokens UInt64 DEFAULT 0 AFTER input_image_tokens;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS cost_audio Nullable(Decimal(38, 18)) DEFAULT if(cost_total IS NULL, NULL, toDecimal128(0, 18)) COMMENT 'Audio input, cached audio input and audio output' AFTER cost_reasoning;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS cost_image Nullable(Decimal(38, 18)) DEFAULT if(cost_total IS NULL, NULL, toDecimal128(0, 18)) COMMENT 'Image input and output' AFTER cost_audio;

ALTER TABLE call_cancellations ADD COLUMN IF NOT EXISTS input_audio_tokens UInt64 DEFAULT 0 AFTER reasoning_tokens;
ALTER TABLE call_cancellations ADD COLUMN IF NOT EXISTS cache_audio_read_tokens UInt64 DEFAULT 0 AFTER input_audio_tokens;
ALTER TABLE call_cancellations ADD COLUMN IF NOT EXISTS output_audio_tokens UInt64 DEFAULT 0 AFTER cache_audio_read_tokens;
ALTER TABLE call_cancellations ADD COLUMN IF NOT EXISTS input_image_tokens UInt64 DEFAULT 0 AFTER output_audio_tokens;
ALTER TABLE call_cancellations ADD COLUMN IF NOT EXISTS output_image_tokens UInt64 DEFAULT 0 AFTER input_image_tokens;
ALTER TABLE call_cancellations ADD COLUMN IF NOT EXISTS cost_audio Nullable(Decimal(38, 18)) DEFAULT if(cost_total IS NULL, NULL, toDecimal128(0, 18)) AFTER cost_reasoning;
ALTER TABLE call_cancellations ADD COLUMN IF NOT EXISTS cost_image Nullable(Decimal(38, 18)) DEFAULT if(cost_total IS NULL, NULL, toDecimal128(0, 18)) AFTER cost_audio;

ALTER TABLE call_changes ADD COLUMN IF NOT EXISTS input_audio_tokens UInt64 DEFAULT 0 AFTER reasoning_tokens;
ALTER TABLE call_changes ADD COLUMN IF NOT EXISTS cache_audio_read_tokens UInt64 DEFAULT 0 AFTER input_audio_tokens;
ALTER TABLE call_changes ADD COLUMN IF NOT EXISTS output_audio_tokens UInt64 DEFAULT 0 AFTER cache_audio_read_tokens;
ALTER TABLE call_changes ADD COLUMN IF NOT EXISTS input_image_tokens UInt64 DEFAULT 0 AFTER output_audio_tokens;
ALTER TABLE call_changes ADD COLUMN IF NOT EXISTS output_image_tokens UInt64 DEFAULT 0 AFTER input_image_tokens;
ALTER TABLE call_changes ADD COLUMN IF NOT EXISTS cost_audio Nullable(Decimal(38, 18)) AFTER cost_reasoning;
ALTER TABLE call_changes ADD COLUMN IF NOT EXISTS cost_image Nullable(Decimal(38, 18)) AFTER cost_audio;

ALTER TABLE call_costs_hourly ADD COLUMN IF NOT EXISTS audio_tokens Int64 DEFAULT 0 COMMENT 'Audio input, cached audio input and audio output tokens' AFTER reasoning_tokens;
ALTER TABLE call_costs_hourly ADD COLUMN IF NOT EXISTS image_tokens Int64 DEFAULT 0 COMMENT 'Image input and output tokens' AFTER audio_tokens;
ALTER TABLE call_costs_hourly ADD COLUMN IF NOT EXISTS cost_audio Decimal(38, 18) DEFAULT 0 AFTER cost_reasoning;
ALTER TABLE call_costs_hourly ADD COLUMN IF NOT EXISTS cost_image Decimal(38, 18) DEFAULT 0 AFTER cost_audio;

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
    cost_cache_read_uncached, cost_cache_write_uncached, toInt8(1) AS sign
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
    cost_cache_read_uncached, cost_cache_write_uncached, toInt8(-1) AS sign
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
    sum(sign * ifNull(cost_cache_write_uncached, toDecimal128(0, 18))) AS cost_cache_write_uncached
FROM call_changes AS c
GROUP BY hour, scenario_id, environment, owner, provider, model, role, status, service_tier, is_retry, is_fallback;
