CREATE TABLE alert_deliveries
(
    `receiver` LowCardinality(String),
    `fingerprint` String,
    `at` DateTime64(3, 'UTC') COMMENT 'The alert event\'s time (alert_events.at); for a repeat of a firing alert, the evaluation time of the cycle that repeated it',
    `state` LowCardinality(String),
    `delivered_at` DateTime64(3, 'UTC') DEFAULT now64(3),
    `outcome` LowCardinality(String) DEFAULT 'sent' COMMENT 'sent | silenced | skipped'
)
ENGINE = ReplacingMergeTree
ORDER BY (receiver, fingerprint, at, state)
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 8192
COMMENT 'Which alert events each receiver acknowledged';

CREATE TABLE alert_events
(
    `at` DateTime64(3, 'UTC') COMMENT 'Evaluation time (the data\'s time) that decided the event',
    `alert` LowCardinality(String) COMMENT 'Rule name (Prometheus alertname)',
    `kind` LowCardinality(String) COMMENT 'budget | anomaly | unpriced | ...',
    `fingerprint` String COMMENT 'Hash of the alert name and labels: one alert instance',
    `labels` Map(String, String),
    `state` LowCardinality(String) COMMENT 'pending | inactive | firing | cleared | recurred | resolved | restated (only firing and resolved are notified)',
    `starts_at` DateTime64(3, 'UTC') COMMENT 'When the instance started firing (pending, inactive: when it became active)',
    `ends_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'When it resolved (resolved), or when a pending instance went inactive',
    `value` String COMMENT 'The observed value, as exact decimal text (money in the book currency)',
    `expected` String COMMENT 'What the rule expected (threshold, baseline), decimal text or empty',
    `impact` Nullable(Decimal(38, 18)) COMMENT 'Money at stake, in the price book currency, when the kind can say',
    `severity` LowCardinality(String),
    `details` Map(String, String) COMMENT 'Kind-specific figures: period, z, forecast overrun, ...',
    `recorded_at` DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (alert, fingerprint, at, state)
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 8192
COMMENT 'Alert state transitions (pending, inactive, firing, resolved); the evaluator\'s state is rebuilt from it';

CREATE TABLE alert_judgements
(
    `alert` LowCardinality(String) COMMENT 'Rule name (Prometheus alertname)',
    `window_start` DateTime64(3, 'UTC') COMMENT 'Start of the judged window (an anomaly rule\'s hour, a budget\'s period); a task metric\'s hour is judged decision_lag after it closed',
    `window_end` DateTime64(3, 'UTC') COMMENT 'End of the judged window (exclusive)',
    `digest` String COMMENT 'Read before judging. Call windows: calls:unpriced:retried:tokens:known cost of every stored call in the window. Anomaly rules of task metrics: tasks:calls:unpriced:cost/decided tasks:calls:unpriced:cost/accepted:waste cost of the tasks first seen in the hour, decided as of judged_at',
    `findings` String COMMENT 'JSON: fingerprint -> {labels, value} of each label set found (anomalous, over a threshold)',
    `judged_at` DateTime64(3, 'UTC') COMMENT 'Evaluation time (the data\'s time) of this judgement',
    `recorded_at` DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(recorded_at)
PARTITION BY toYYYYMM(window_start)
ORDER BY (alert, window_start)
TTL toDateTime(window_start) + toIntervalDay(35)
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 8192
COMMENT 'What each alert rule judged of each closed window, to notice restatements';

CREATE TABLE call_cancellations
(
    `event_id` String,
    `task_id` String,
    `ts` DateTime64(3, 'UTC'),
    `provider` LowCardinality(String),
    `model` LowCardinality(String),
    `scenario_id` LowCardinality(String),
    `environment` LowCardinality(String),
    `owner` LowCardinality(String),
    `role` LowCardinality(String),
    `status` LowCardinality(String),
    `service_tier` LowCardinality(String),
    `attempt` UInt16,
    `retry_of` String,
    `fallback_from` LowCardinality(String),
    `latency_ms` Nullable(UInt32),
    `max_output_tokens` Nullable(UInt32),
    `input_tokens` UInt64,
    `cache_read_tokens` UInt64,
    `cache_write_tokens` UInt64,
    `cache_write_1h_tokens` UInt64,
    `output_tokens` UInt64,
    `reasoning_tokens` UInt64,
    `input_audio_tokens` UInt64 DEFAULT 0,
    `cache_audio_read_tokens` UInt64 DEFAULT 0,
    `output_audio_tokens` UInt64 DEFAULT 0,
    `input_image_tokens` UInt64 DEFAULT 0,
    `output_image_tokens` UInt64 DEFAULT 0,
    `cost_input` Nullable(Decimal(38, 18)),
    `cost_cache_read` Nullable(Decimal(38, 18)),
    `cost_cache_write` Nullable(Decimal(38, 18)),
    `cost_output` Nullable(Decimal(38, 18)),
    `cost_reasoning` Nullable(Decimal(38, 18)),
    `cost_audio` Nullable(Decimal(38, 18)) DEFAULT if(cost_total IS NULL, NULL, toDecimal128(0, 18)),
    `cost_image` Nullable(Decimal(38, 18)) DEFAULT if(cost_total IS NULL, NULL, toDecimal128(0, 18)),
    `cost_request` Nullable(Decimal(38, 18)),
    `cost_units` Nullable(Decimal(38, 18)),
    `cost_total` Nullable(Decimal(38, 18)),
    `cost_cache_read_uncached` Nullable(Decimal(38, 18)),
    `cost_cache_write_uncached` Nullable(Decimal(38, 18)),
    `cost_known` Nullable(Decimal(38, 18)) DEFAULT cost_total,
    `cancelled_at` DateTime64(3, 'UTC') DEFAULT now64(3),
    `plan_id` String COMMENT 'The sink batch that wrote this row (see sink_plans)'
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (task_id, event_id)
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 8192
COMMENT 'Call rows a reprice replaced, exactly as stored before; they leave the call aggregates';

CREATE MATERIALIZED VIEW call_cancellations_to_call_changes TO call_changes
(
    `event_id` String,
    `task_id` String,
    `ts` DateTime64(3, 'UTC'),
    `provider` LowCardinality(String),
    `model` LowCardinality(String),
    `scenario_id` LowCardinality(String),
    `environment` LowCardinality(String),
    `owner` LowCardinality(String),
    `role` LowCardinality(String),
    `status` LowCardinality(String),
    `service_tier` LowCardinality(String),
    `attempt` UInt16,
    `retry_of` String,
    `fallback_from` LowCardinality(String),
    `latency_ms` Nullable(UInt32),
    `max_output_tokens` Nullable(UInt32),
    `input_tokens` UInt64,
    `cache_read_tokens` UInt64,
    `cache_write_tokens` UInt64,
    `cache_write_1h_tokens` UInt64,
    `output_tokens` UInt64,
    `reasoning_tokens` UInt64,
    `input_audio_tokens` UInt64,
    `cache_audio_read_tokens` UInt64,
    `output_audio_tokens` UInt64,
    `input_image_tokens` UInt64,
    `output_image_tokens` UInt64,
    `cost_input` Nullable(Decimal(38, 18)),
    `cost_cache_read` Nullable(Decimal(38, 18)),
    `cost_cache_write` Nullable(Decimal(38, 18)),
    `cost_output` Nullable(Decimal(38, 18)),
    `cost_reasoning` Nullable(Decimal(38, 18)),
    `cost_audio` Nullable(Decimal(38, 18)),
    `cost_image` Nullable(Decimal(38, 18)),
    `cost_request` Nullable(Decimal(38, 18)),
    `cost_units` Nullable(Decimal(38, 18)),
    `cost_total` Nullable(Decimal(38, 18)),
    `cost_cache_read_uncached` Nullable(Decimal(38, 18)),
    `cost_cache_write_uncached` Nullable(Decimal(38, 18)),
    `cost_known` Nullable(Decimal(38, 18)),
    `sign` Int8
)
AS SELECT
    event_id,
    task_id,
    ts,
    provider,
    model,
    scenario_id,
    environment,
    owner,
    role,
    status,
    service_tier,
    attempt,
    retry_of,
    fallback_from,
    latency_ms,
    max_output_tokens,
    input_tokens,
    cache_read_tokens,
    cache_write_tokens,
    cache_write_1h_tokens,
    output_tokens,
    reasoning_tokens,
    input_audio_tokens,
    cache_audio_read_tokens,
    output_audio_tokens,
    input_image_tokens,
    output_image_tokens,
    cost_input,
    cost_cache_read,
    cost_cache_write,
    cost_output,
    cost_reasoning,
    cost_audio,
    cost_image,
    cost_request,
    cost_units,
    cost_total,
    cost_cache_read_uncached,
    cost_cache_write_uncached,
    cost_known,
    toInt8(-1) AS sign
FROM call_cancellations;

CREATE TABLE call_changes
(
    `event_id` String,
    `task_id` String,
    `ts` DateTime64(3, 'UTC'),
    `provider` LowCardinality(String),
    `model` LowCardinality(String),
    `scenario_id` LowCardinality(String),
    `environment` LowCardinality(String),
    `owner` LowCardinality(String),
    `role` LowCardinality(String),
    `status` LowCardinality(String),
    `service_tier` LowCardinality(String),
    `attempt` UInt16,
    `retry_of` String,
    `fallback_from` LowCardinality(String),
    `latency_ms` Nullable(UInt32),
    `max_output_tokens` Nullable(UInt32),
    `input_tokens` UInt64,
    `cache_read_tokens` UInt64,
    `cache_write_tokens` UInt64,
    `cache_write_1h_tokens` UInt64,
    `output_tokens` UInt64,
    `reasoning_tokens` UInt64,
    `input_audio_tokens` UInt64 DEFAULT 0,
    `cache_audio_read_tokens` UInt64 DEFAULT 0,
    `output_audio_tokens` UInt64 DEFAULT 0,
    `input_image_tokens` UInt64 DEFAULT 0,
    `output_image_tokens` UInt64 DEFAULT 0,
    `cost_input` Nullable(Decimal(38, 18)),
    `cost_cache_read` Nullable(Decimal(38, 18)),
    `cost_cache_write` Nullable(Decimal(38, 18)),
    `cost_output` Nullable(Decimal(38, 18)),
    `cost_reasoning` Nullable(Decimal(38, 18)),
    `cost_audio` Nullable(Decimal(38, 18)),
    `cost_image` Nullable(Decimal(38, 18)),
    `cost_request` Nullable(Decimal(38, 18)),
    `cost_units` Nullable(Decimal(38, 18)),
    `cost_total` Nullable(Decimal(38, 18)),
    `cost_cache_read_uncached` Nullable(Decimal(38, 18)),
    `cost_cache_write_uncached` Nullable(Decimal(38, 18)),
    `cost_known` Nullable(Decimal(38, 18)),
    `sign` Int8 COMMENT '+1: a call row as inserted into calls; -1: a row a reprice replaced'
)
ENGINE = `Null`
COMMENT 'Change stream of call rows (stores nothing); the call aggregates are fed from it';

CREATE TABLE call_costs_hourly
(
    `hour` DateTime('UTC') COMMENT 'UTC hour of the call\'s event time',
    `scenario_id` LowCardinality(String) COMMENT 'Scenario as the call reported it',
    `environment` LowCardinality(String) COMMENT 'Environment as the call reported it',
    `owner` LowCardinality(String) COMMENT 'Owner (team billed) as the call reported it',
    `provider` LowCardinality(String),
    `model` LowCardinality(String) COMMENT 'Model id as the gateway reported it',
    `role` LowCardinality(String) COMMENT 'Role of the call inside its task: classifier, generator, critic, judge, ...',
    `status` LowCardinality(String) COMMENT 'ok | error | timeout | rate_limited | invalid_output',
    `service_tier` LowCardinality(String),
    `is_retry` UInt8 COMMENT '1: attempt > 1 or retry_of set',
    `is_fallback` UInt8 COMMENT '1: fallback_from set',
    `calls` Int64 COMMENT 'Number of calls',
    `unpriced_calls` Int64 COMMENT 'Calls the price book could not price (cost counted as 0)',
    `partly_priced_calls` Int64 DEFAULT 0 COMMENT 'Unpriced calls of which a part could be priced (included in unpriced_calls)',
    `input_tokens` Int64 COMMENT 'Uncached input tokens',
    `cache_read_tokens` Int64,
    `cache_write_tokens` Int64 COMMENT '5-minute and 1-hour cache writes',
    `output_tokens` Int64,
    `reasoning_tokens` Int64,
    `audio_tokens` Int64 DEFAULT 0 COMMENT 'Audio input, cached audio input and audio output tokens',
    `image_tokens` Int64 DEFAULT 0 COMMENT 'Image input and output tokens',
    `calls_with_cap` Int64 COMMENT 'Calls that reported max_output_tokens',
    `capped_calls` Int64 COMMENT 'Calls whose output + reasoning tokens reached max_output_tokens',
    `cap_tokens` Int64 COMMENT 'Sum of max_output_tokens over calls_with_cap',
    `capped_output_tokens` Int64 COMMENT 'Sum of output + reasoning tokens over calls_with_cap',
    `latency_calls` Int64 COMMENT 'Calls that reported latency_ms',
    `latency_ms` Int64 COMMENT 'Sum of latency_ms over latency_calls',
    `cost_input` Decimal(38, 18),
    `cost_cache_read` Decimal(38, 18),
    `cost_cache_write` Decimal(38, 18),
    `cost_output` Decimal(38, 18),
    `cost_reasoning` Decimal(38, 18),
    `cost_audio` Decimal(38, 18) DEFAULT 0,
    `cost_image` Decimal(38, 18) DEFAULT 0,
    `cost_request` Decimal(38, 18),
    `cost_units` Decimal(38, 18),
    `cost_total` Decimal(38, 18) COMMENT 'Billed cost of the calls (unpriced calls count 0)',
    `cost_cache_read_uncached` Decimal(38, 18) COMMENT 'Cache-read tokens at the input rate',
    `cost_cache_write_uncached` Decimal(38, 18) COMMENT 'Cache-write tokens at the input rate',
    `cost_known` Decimal(38, 18) DEFAULT cost_total COMMENT 'Lower bound of the cost: cost_total plus the known part of calls priced in part'
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, scenario_id, environment, owner, provider, model, role, status, service_tier, is_retry, is_fallback)
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 8192
COMMENT 'Calls, tokens and cost per hour and call label; always read with sum()';

CREATE MATERIALIZED VIEW call_costs_hourly_mv TO call_costs_hourly
(
    `hour` DateTime('UTC'),
    `scenario_id` LowCardinality(String),
    `environment` LowCardinality(String),
    `owner` LowCardinality(String),
    `provider` LowCardinality(String),
    `model` LowCardinality(String),
    `role` LowCardinality(String),
    `status` LowCardinality(String),
    `service_tier` LowCardinality(String),
    `is_retry` UInt8,
    `is_fallback` LowCardinality(UInt8),
    `calls` Int64,
    `unpriced_calls` Int64,
    `partly_priced_calls` Int64,
    `input_tokens` Int64,
    `cache_read_tokens` Int64,
    `cache_write_tokens` Int64,
    `output_tokens` Int64,
    `reasoning_tokens` Int64,
    `audio_tokens` Int64,
    `image_tokens` Int64,
    `calls_with_cap` Int64,
    `capped_calls` Int64,
    `cap_tokens` Int64,
    `capped_output_tokens` Int64,
    `latency_calls` Int64,
    `latency_ms` Int64,
    `cost_input` Decimal(38, 18),
    `cost_cache_read` Decimal(38, 18),
    `cost_cache_write` Decimal(38, 18),
    `cost_output` Decimal(38, 18),
    `cost_reasoning` Decimal(38, 18),
    `cost_audio` Decimal(38, 18),
    `cost_image` Decimal(38, 18),
    `cost_request` Decimal(38, 18),
    `cost_units` Decimal(38, 18),
    `cost_total` Decimal(38, 18),
    `cost_cache_read_uncached` Decimal(38, 18),
    `cost_cache_write_uncached` Decimal(38, 18),
    `cost_known` Decimal(38, 18)
)
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
    toUInt8((attempt > 1) OR (retry_of != '')) AS is_retry,
    toUInt8(fallback_from != '') AS is_fallback,
    sum(toInt64(sign)) AS calls,
    sum(sign * toInt64(c.cost_total IS NULL)) AS unpriced_calls,
    sum(sign * toInt64((c.cost_total IS NULL) AND (c.cost_known IS NOT NULL))) AS partly_priced_calls,
    sum(sign * toInt64(input_tokens)) AS input_tokens,
    sum(sign * toInt64(cache_read_tokens)) AS cache_read_tokens,
    sum(sign * toInt64(cache_write_tokens + cache_write_1h_tokens)) AS cache_write_tokens,
    sum(sign * toInt64(output_tokens)) AS output_tokens,
    sum(sign * toInt64(reasoning_tokens)) AS reasoning_tokens,
    sum(sign * toInt64((input_audio_tokens + cache_audio_read_tokens) + output_audio_tokens)) AS audio_tokens,
    sum(sign * toInt64(input_image_tokens + output_image_tokens)) AS image_tokens,
    sum(sign * toInt64(max_output_tokens IS NOT NULL)) AS calls_with_cap,
    sum(sign * toInt64(ifNull((c.output_tokens + c.reasoning_tokens) >= c.max_output_tokens, 0))) AS capped_calls,
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
GROUP BY
    hour,
    scenario_id,
    environment,
    owner,
    provider,
    model,
    role,
    status,
    service_tier,
    is_retry,
    is_fallback;

CREATE TABLE call_latency_daily
(
    `day` Date COMMENT 'UTC date of the call\'s event time',
    `scenario_id` LowCardinality(String) COMMENT 'Scenario as the call reported it',
    `environment` LowCardinality(String),
    `owner` LowCardinality(String),
    `provider` LowCardinality(String),
    `model` LowCardinality(String),
    `latency_bin` Int16 COMMENT 'floor(ln(latency_ms) / ln(1.01)); -32768 for 0 ms',
    `calls` Int64 COMMENT 'Calls in the bin',
    `latency_ms` Int64 COMMENT 'Sum of latency_ms of the calls in the bin'
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (day, scenario_id, environment, owner, provider, model, latency_bin)
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 8192
COMMENT 'Histogram of call latency (1% bins) per day and model; always read with sum()';

CREATE MATERIALIZED VIEW call_latency_daily_mv TO call_latency_daily
(
    `day` Date,
    `scenario_id` LowCardinality(String),
    `environment` LowCardinality(String),
    `owner` LowCardinality(String),
    `provider` LowCardinality(String),
    `model` LowCardinality(String),
    `latency_bin` Int16,
    `calls` Int64,
    `latency_ms` Int64
)
AS SELECT
    toDate(ts, 'UTC') AS day,
    scenario_id,
    environment,
    owner,
    provider,
    model,
    if(assumeNotNull(c.latency_ms) = 0, toInt16(-32768), toInt16(floor(log(toFloat64(assumeNotNull(c.latency_ms))) / log(1.01)))) AS latency_bin,
    sum(toInt64(sign)) AS calls,
    sum(sign * toInt64(assumeNotNull(c.latency_ms))) AS latency_ms
FROM call_changes AS c
WHERE c.latency_ms IS NOT NULL
GROUP BY
    day,
    scenario_id,
    environment,
    owner,
    provider,
    model,
    latency_bin;

CREATE TABLE call_repricings
(
    `reprice_id` String COMMENT 'One run of costflow reprice',
    `event_id` String,
    `task_id` String,
    `ts` DateTime64(3, 'UTC') COMMENT 'Event time of the call',
    `provider` LowCardinality(String),
    `model` LowCardinality(String),
    `old_price_book_version` LowCardinality(String) COMMENT 'Version that priced the call before',
    `new_price_book_version` LowCardinality(String) COMMENT 'Version that priced it in this reprice',
    `old_cost_total` Nullable(Decimal(38, 18)) COMMENT 'NULL when the call was unpriced before',
    `old_cost_known` Nullable(Decimal(38, 18)) DEFAULT old_cost_total COMMENT 'The part of the old cost that was known (old_cost_total when it was priced)',
    `new_cost_total` Decimal(38, 18),
    `currency` LowCardinality(String),
    `repriced_at` DateTime64(3, 'UTC') DEFAULT now64(3),
    `plan_id` String COMMENT 'The sink batch that wrote this row (see sink_plans)'
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (reprice_id, task_id, event_id)
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 8192
COMMENT 'Every price change a reprice made: the call under the old and the new price-book version';

CREATE TABLE calls
(
    `event_id` String COMMENT 'Idempotency key of the call event',
    `task_id` String COMMENT 'Task this call belongs to',
    `ts` DateTime64(3, 'UTC') COMMENT 'Event time of the call',
    `provider` LowCardinality(String),
    `model` LowCardinality(String),
    `scenario_id` LowCardinality(String) COMMENT 'Scenario as the call reported it (tasks.scenario_id is authoritative)',
    `environment` LowCardinality(String),
    `owner` LowCardinality(String) DEFAULT '' COMMENT 'Owner as the call reported it (tasks.owner is authoritative)',
    `role` LowCardinality(String) COMMENT 'generator, classifier, critic, judge, ...',
    `status` LowCardinality(String) COMMENT 'ok | error | timeout | rate_limited | invalid_output',
    `service_tier` LowCardinality(String),
    `attempt` UInt16,
    `retry_of` String,
    `fallback_from` LowCardinality(String),
    `latency_ms` Nullable(UInt32),
    `max_output_tokens` Nullable(UInt32) COMMENT 'The request\'s output cap, when the gateway reported it',
    `input_tokens` UInt64,
    `cache_read_tokens` UInt64,
    `cache_write_tokens` UInt64,
    `cache_write_1h_tokens` UInt64 DEFAULT 0,
    `output_tokens` UInt64,
    `reasoning_tokens` UInt64,
    `input_audio_tokens` UInt64 DEFAULT 0,
    `cache_audio_read_tokens` UInt64 DEFAULT 0,
    `output_audio_tokens` UInt64 DEFAULT 0,
    `input_image_tokens` UInt64 DEFAULT 0,
    `output_image_tokens` UInt64 DEFAULT 0,
    `units` Map(LowCardinality(String), Decimal(38, 9)) COMMENT 'Non-token usage by unit: query, evaluation, tool_call, gpu_second, ...',
    `cost_input` Nullable(Decimal(38, 18)),
    `cost_cache_read` Nullable(Decimal(38, 18)),
    `cost_cache_write` Nullable(Decimal(38, 18)),
    `cost_output` Nullable(Decimal(38, 18)),
    `cost_reasoning` Nullable(Decimal(38, 18)),
    `cost_audio` Nullable(Decimal(38, 18)) DEFAULT if(cost_total IS NULL, NULL, toDecimal128(0, 18)) COMMENT 'Audio input, cached audio input and audio output',
    `cost_image` Nullable(Decimal(38, 18)) DEFAULT if(cost_total IS NULL, NULL, toDecimal128(0, 18)) COMMENT 'Image input and output',
    `cost_request` Nullable(Decimal(38, 18)),
    `cost_units` Nullable(Decimal(38, 18)) COMMENT 'Cost of the non-token units',
    `cost_total` Nullable(Decimal(38, 18)) COMMENT 'NULL when the call could not be priced; see pricing_error',
    `cost_cache_read_uncached` Nullable(Decimal(38, 18)) COMMENT 'What the cache-read tokens would have cost at the call\'s input rate (not billed)',
    `cost_cache_write_uncached` Nullable(Decimal(38, 18)) COMMENT 'What the cache-write tokens would have cost at the call\'s input rate (not billed)',
    `cost_known` Nullable(Decimal(38, 18)) DEFAULT cost_total COMMENT 'Lower bound of the cost: cost_total when priced, the known part when priced in part (see unpriced_dimensions), NULL when nothing could be priced',
    `cost_known_parts` Map(LowCardinality(String), Decimal(38, 18)) COMMENT 'Known cost per billed dimension of a call priced in part; empty otherwise',
    `currency` LowCardinality(String),
    `list_currency` LowCardinality(String) DEFAULT '' COMMENT 'Currency of the price entry; costs are converted to currency',
    `fx_rate` Nullable(Decimal(38, 18)) COMMENT 'list_currency -> currency rate used; NULL when no conversion',
    `price_book_version` LowCardinality(String) COMMENT 'name@version of the price book that priced this row',
    `price_overlay` LowCardinality(String) DEFAULT '' COMMENT 'Negotiated-price overlay that applied; empty for list prices',
    `pricing_error` String COMMENT 'Why cost is NULL; empty when priced',
    `unpriced_dimensions` Array(LowCardinality(String)) COMMENT 'Token classes and units the price book has no price for; empty when priced or when nothing could be priced',
    `attributes` Map(String, String),
    `reprice_id` String DEFAULT '' COMMENT 'The reprice that wrote this price; empty when priced by stage 1',
    `ingested_at` DateTime64(3, 'UTC') DEFAULT now64(3),
    `plan_id` String DEFAULT '' COMMENT 'The sink batch that wrote this row (see sink_plans)',
    INDEX plan_idx plan_id TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (task_id, event_id)
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 8192
COMMENT 'One row per distinct model call, priced';

CREATE MATERIALIZED VIEW calls_to_call_changes TO call_changes
(
    `event_id` String,
    `task_id` String,
    `ts` DateTime64(3, 'UTC'),
    `provider` LowCardinality(String),
    `model` LowCardinality(String),
    `scenario_id` LowCardinality(String),
    `environment` LowCardinality(String),
    `owner` LowCardinality(String),
    `role` LowCardinality(String),
    `status` LowCardinality(String),
    `service_tier` LowCardinality(String),
    `attempt` UInt16,
    `retry_of` String,
    `fallback_from` LowCardinality(String),
    `latency_ms` Nullable(UInt32),
    `max_output_tokens` Nullable(UInt32),
    `input_tokens` UInt64,
    `cache_read_tokens` UInt64,
    `cache_write_tokens` UInt64,
    `cache_write_1h_tokens` UInt64,
    `output_tokens` UInt64,
    `reasoning_tokens` UInt64,
    `input_audio_tokens` UInt64,
    `cache_audio_read_tokens` UInt64,
    `output_audio_tokens` UInt64,
    `input_image_tokens` UInt64,
    `output_image_tokens` UInt64,
    `cost_input` Nullable(Decimal(38, 18)),
    `cost_cache_read` Nullable(Decimal(38, 18)),
    `cost_cache_write` Nullable(Decimal(38, 18)),
    `cost_output` Nullable(Decimal(38, 18)),
    `cost_reasoning` Nullable(Decimal(38, 18)),
    `cost_audio` Nullable(Decimal(38, 18)),
    `cost_image` Nullable(Decimal(38, 18)),
    `cost_request` Nullable(Decimal(38, 18)),
    `cost_units` Nullable(Decimal(38, 18)),
    `cost_total` Nullable(Decimal(38, 18)),
    `cost_cache_read_uncached` Nullable(Decimal(38, 18)),
    `cost_cache_write_uncached` Nullable(Decimal(38, 18)),
    `cost_known` Nullable(Decimal(38, 18)),
    `sign` Int8
)
AS SELECT
    event_id,
    task_id,
    ts,
    provider,
    model,
    scenario_id,
    environment,
    owner,
    role,
    status,
    service_tier,
    attempt,
    retry_of,
    fallback_from,
    latency_ms,
    max_output_tokens,
    input_tokens,
    cache_read_tokens,
    cache_write_tokens,
    cache_write_1h_tokens,
    output_tokens,
    reasoning_tokens,
    input_audio_tokens,
    cache_audio_read_tokens,
    output_audio_tokens,
    input_image_tokens,
    output_image_tokens,
    cost_input,
    cost_cache_read,
    cost_cache_write,
    cost_output,
    cost_reasoning,
    cost_audio,
    cost_image,
    cost_request,
    cost_units,
    cost_total,
    cost_cache_read_uncached,
    cost_cache_write_uncached,
    cost_known,
    toInt8(1) AS sign
FROM calls;

CREATE TABLE dead_letters
(
    `dlq_partition` Int32,
    `dlq_offset` Int64,
    `source_topic` LowCardinality(String),
    `source_partition` Int32,
    `source_offset` Int64,
    `reason` LowCardinality(String) COMMENT 'Stable reason code, e.g. not_json, schema_violation',
    `detail` String,
    `payload` String COMMENT 'The original record bytes',
    `received_at` DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (dlq_partition, dlq_offset)
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 8192
COMMENT 'Every input record the worker refused, with its reason and original bytes';

CREATE TABLE fixed_costs
(
    `loaded_at` DateTime64(3, 'UTC') COMMENT 'When costflow fixed-costs load wrote this declaration; the latest load is current',
    `source` String COMMENT 'The declaration file and its SHA-256',
    `item` String COMMENT 'Name of the cost item, unique in a load',
    `category` LowCardinality(String) COMMENT 'staging | test | eval | reserve | gpu | engineering | other',
    `period_start` Date COMMENT 'First day the cost covers (UTC)',
    `period_end` Date COMMENT 'Day after the last day the cost covers (exclusive)',
    `amount` Decimal(38, 18) COMMENT 'The cost over the whole period, in currency',
    `currency` LowCardinality(String) COMMENT 'ISO 4217; the billing currency of the priced calls',
    `rule` LowCardinality(String) COMMENT 'usage_share: each day\'s part by that day\'s variable cost of each scenario; weights: by fixed weights',
    `scenarios` Array(String) COMMENT 'usage_share: the scenarios that share it (empty: every scenario with usage)',
    `weights` Map(String, Decimal(38, 18)) COMMENT 'weights: scenario -> weight',
    `note` String
)
ENGINE = MergeTree
ORDER BY (loaded_at, item)
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 8192
COMMENT 'Declared fixed costs, one full set per load (see v_fixed_costs for the current one)';

CREATE TABLE focus_rates
(
    `price_book_version` LowCardinality(String) COMMENT 'name@version of the book the rates come from (the calls\' price_book_version)',
    `provider` LowCardinality(String) COMMENT 'Provider as the calls report it',
    `model` LowCardinality(String) COMMENT 'Model as the calls report it',
    `service_tier` LowCardinality(String),
    `owner` LowCardinality(String) COMMENT 'Owner as the calls report it (overlays match on it); row policies filter on it',
    `environment` LowCardinality(String) COMMENT 'Environment as the calls report it (overlays match on it)',
    `valid_from` DateTime64(3, 'UTC') COMMENT 'The rates apply to calls at or after this instant',
    `valid_to` DateTime64(3, 'UTC') COMMENT '... and before this one: one entry and one overlay in force, clipped to the exported month',
    `prompt_above` Int64 COMMENT 'Context tier: calls with more prompt tokens than this (-1: from 0)',
    `prompt_upto` Int64 COMMENT '... and at most this many (9223372036854775807: no upper bound)',
    `off_peak` UInt8 COMMENT '1: the rates inside the entry\'s off-peak windows; 0: outside them',
    `off_peak_windows` Array(Tuple(
        UInt8,
        UInt16,
        UInt16)) COMMENT 'The entry\'s off-peak windows: (ISO weekday, first minute of the day, minute after the last), UTC; empty when none',
    `price_overlay` LowCardinality(String) COMMENT 'The negotiated overlay in force; empty for list prices',
    `meter` LowCardinality(String) COMMENT 'Usage class: input, cache_read, cache_write_5m, cache_write_1h, output, reasoning, input_audio, cache_audio_read, output_audio, input_image, output_image, request, unit:<name>',
    `pricing_currency` LowCardinality(String) COMMENT 'Currency of the entry\'s prices (converted to the book\'s by the call\'s fx_rate)',
    `list_unit_price` Decimal(38, 18) COMMENT 'List price per pricing unit (1000000 tokens, one request, one unit), before overlays',
    `contracted_unit_price` Decimal(38, 18) COMMENT 'Price per pricing unit after the negotiated overlay (equal to the list price without one)',
    `loaded_at` DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(loaded_at)
ORDER BY (price_book_version, provider, model, service_tier, owner, environment, meter, valid_from, prompt_above, off_peak)
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 8192
COMMENT 'Unit prices of the price books that priced the calls, per usage class, as costflow focus export resolved them (read with FINAL)';

CREATE TABLE schema_migrations
(
    `number` UInt32,
    `name` String,
    `checksum` String,
    `applied_at` DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY number
SETTINGS index_granularity = 8192;

CREATE TABLE sink_plans
(
    `plan_id` String,
    `tables` Array(String) COMMENT 'Tables the batch writes, each with token plan_id:table',
    `state` Enum8('started' = 1, 'done' = 2),
    `at` DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (plan_id, state)
TTL toDateTime(at) + toIntervalDay(7)
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 8192
COMMENT 'Write-ahead record of sink batches, for completing interrupted inserts';

CREATE TABLE task_arms_daily
(
    `day` Date COMMENT 'UTC date of the task\'s first event',
    `scenario_id` LowCardinality(String),
    `environment` LowCardinality(String),
    `owner` LowCardinality(String),
    `dimension` LowCardinality(String) COMMENT 'model: tasks that used the model; experiment: tasks labelled with the arm',
    `arm` LowCardinality(String) COMMENT 'The model, or the experiment label',
    `outcome` LowCardinality(String) COMMENT 'accepted | rejected | failed, or empty while none has arrived',
    `open_deadline` DateTime64(3, 'UTC') COMMENT 'Outcome deadline of tasks without an outcome; 1970-01-01 for tasks with one',
    `tasks` Int64 COMMENT 'Number of tasks (sum of signs)',
    `calls` Int64 COMMENT 'All calls of those tasks, every model',
    `total_cost` Decimal(38, 18) COMMENT 'Whole cost of those tasks, every model'
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (day, scenario_id, environment, owner, dimension, arm, outcome, open_deadline)
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 8192
COMMENT 'Tasks and their whole cost per day, scenario, environment, owner, outcome and arm (model used, or experiment label); always read with sum()';

CREATE MATERIALIZED VIEW task_arms_daily_mv TO task_arms_daily
(
    `day` Date,
    `scenario_id` LowCardinality(String),
    `environment` LowCardinality(String),
    `owner` LowCardinality(String),
    `dimension` String,
    `arm` String,
    `outcome` LowCardinality(String),
    `open_deadline` DateTime64(3, 'UTC'),
    `tasks` Int64,
    `calls` Int64,
    `total_cost` Decimal(38, 18)
)
AS SELECT
    toDate(t.first_event_at) AS day,
    t.scenario_id AS scenario_id,
    t.environment AS environment,
    t.owner AS owner,
    a.1 AS dimension,
    a.2 AS arm,
    t.outcome AS outcome,
    if(t.outcome = '', t.outcome_deadline, toDateTime64(0, 3, 'UTC')) AS open_deadline,
    sum(toInt64(t.sign)) AS tasks,
    sum(t.sign * toInt64(t.calls)) AS calls,
    sum(t.sign * t.total_cost) AS total_cost
FROM task_changes AS t
ARRAY JOIN arrayConcat(arrayMap(m -> ('model', toString(m)), t.models), if(t.experiment = '', [], [('experiment', toString(t.experiment))])) AS a
GROUP BY
    day,
    scenario_id,
    environment,
    owner,
    dimension,
    arm,
    outcome,
    open_deadline;

CREATE TABLE task_changes
(
    `task_id` String,
    `version` UInt64 COMMENT 'Distinct events in the snapshot * 2^20 + number of reprices applied to the task',
    `sign` Int8 COMMENT '+1: the task as of this version; -1: cancels the +1 row of this version',
    `scenario_id` LowCardinality(String),
    `environment` LowCardinality(String),
    `owner` LowCardinality(String),
    `first_event_at` DateTime64(3, 'UTC'),
    `last_event_at` DateTime64(3, 'UTC'),
    `started_at` Nullable(DateTime64(3, 'UTC')),
    `completed_at` Nullable(DateTime64(3, 'UTC')),
    `calls` UInt32,
    `failed_calls` UInt32,
    `retried_calls` UInt32,
    `fallback_calls` UInt32,
    `unpriced_calls` UInt32,
    `total_cost` Decimal(38, 18),
    `input_tokens` UInt64,
    `cache_read_tokens` UInt64,
    `cache_write_tokens` UInt64,
    `output_tokens` UInt64,
    `reasoning_tokens` UInt64,
    `outcome` LowCardinality(String),
    `outcome_source` LowCardinality(String),
    `outcome_at` Nullable(DateTime64(3, 'UTC')),
    `outcome_deadline` DateTime64(3, 'UTC'),
    `reprice_cost_delta` Decimal(38, 18) DEFAULT 0 COMMENT 'Sum over reprices of (new - old) cost of this task\'s calls; included in total_cost',
    `reprice_priced_calls` UInt32 DEFAULT 0 COMMENT 'Calls unpriced by stage 1 that a reprice priced; already subtracted from unpriced_calls',
    `models` Array(LowCardinality(String)) COMMENT 'Distinct models of the task\'s calls as the gateway reported them, sorted',
    `experiment` LowCardinality(String) DEFAULT '' COMMENT 'attributes.experiment: the latest task event that sets it, else the earliest call; empty when none',
    `changed_at` DateTime64(3, 'UTC') DEFAULT now64(3),
    `plan_id` String COMMENT 'The sink batch that wrote this row (see sink_plans)',
    INDEX plan_idx plan_id TYPE bloom_filter GRANULARITY 4
)
ENGINE = VersionedCollapsingMergeTree(sign, version)
ORDER BY task_id
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 8192
COMMENT 'Change log of the task fact table: sign -1 cancels a stored version, +1 adds the new one';

CREATE MATERIALIZED VIEW task_changes_to_tasks TO tasks
(
    `task_id` String,
    `version` UInt64,
    `scenario_id` LowCardinality(String),
    `environment` LowCardinality(String),
    `owner` LowCardinality(String),
    `first_event_at` DateTime64(3, 'UTC'),
    `last_event_at` DateTime64(3, 'UTC'),
    `started_at` Nullable(DateTime64(3, 'UTC')),
    `completed_at` Nullable(DateTime64(3, 'UTC')),
    `calls` UInt32,
    `failed_calls` UInt32,
    `retried_calls` UInt32,
    `fallback_calls` UInt32,
    `unpriced_calls` UInt32,
    `total_cost` Decimal(38, 18),
    `input_tokens` UInt64,
    `cache_read_tokens` UInt64,
    `cache_write_tokens` UInt64,
    `output_tokens` UInt64,
    `reasoning_tokens` UInt64,
    `outcome` LowCardinality(String),
    `outcome_source` LowCardinality(String),
    `outcome_at` Nullable(DateTime64(3, 'UTC')),
    `outcome_deadline` DateTime64(3, 'UTC'),
    `reprice_cost_delta` Decimal(38, 18),
    `reprice_priced_calls` UInt32,
    `models` Array(LowCardinality(String)),
    `experiment` LowCardinality(String),
    `ingested_at` DateTime64(3, 'UTC')
)
AS SELECT
    task_id,
    version,
    scenario_id,
    environment,
    owner,
    first_event_at,
    last_event_at,
    started_at,
    completed_at,
    calls,
    failed_calls,
    retried_calls,
    fallback_calls,
    unpriced_calls,
    total_cost,
    input_tokens,
    cache_read_tokens,
    cache_write_tokens,
    output_tokens,
    reasoning_tokens,
    outcome,
    outcome_source,
    outcome_at,
    outcome_deadline,
    reprice_cost_delta,
    reprice_priced_calls,
    models,
    experiment,
    changed_at AS ingested_at
FROM task_changes
WHERE sign = 1;

CREATE TABLE task_cost_histogram_daily
(
    `day` Date COMMENT 'UTC date of the task\'s first event',
    `scenario_id` LowCardinality(String),
    `environment` LowCardinality(String),
    `owner` LowCardinality(String),
    `cost_bin` Int16 COMMENT 'floor(ln(total_cost) / ln(1.01)); -32768 for tasks that cost nothing',
    `tasks` Int64 COMMENT 'Tasks whose total cost falls in the bin',
    `total_cost` Decimal(38, 18) COMMENT 'Their cost, summed exactly'
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (day, scenario_id, environment, owner, cost_bin)
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 8192
COMMENT 'Histogram of cost per task (1% bins) per day, scenario, environment and owner; always read with sum()';

CREATE MATERIALIZED VIEW task_cost_histogram_daily_mv TO task_cost_histogram_daily
(
    `day` Date,
    `scenario_id` LowCardinality(String),
    `environment` LowCardinality(String),
    `owner` LowCardinality(String),
    `cost_bin` Int16,
    `tasks` Int64,
    `total_cost` Decimal(38, 18)
)
AS SELECT
    toDate(first_event_at, 'UTC') AS day,
    scenario_id,
    environment,
    owner,
    if(t.total_cost <= 0, toInt16(-32768), toInt16(floor(log(toFloat64(t.total_cost)) / log(1.01)))) AS cost_bin,
    sum(toInt64(sign)) AS tasks,
    sum(sign * t.total_cost) AS total_cost
FROM task_changes AS t
GROUP BY
    day,
    scenario_id,
    environment,
    owner,
    cost_bin;

CREATE TABLE task_costs_hourly
(
    `hour` DateTime('UTC') COMMENT 'UTC hour of the task\'s first event',
    `scenario_id` LowCardinality(String),
    `environment` LowCardinality(String),
    `owner` LowCardinality(String),
    `outcome` LowCardinality(String) COMMENT 'accepted | rejected | failed, or empty while none has arrived',
    `open_deadline` DateTime64(3, 'UTC') COMMENT 'Outcome deadline of tasks without an outcome; 1970-01-01 for tasks with one',
    `tasks` Int64 COMMENT 'Number of tasks (sum of signs)',
    `calls` Int64,
    `failed_calls` Int64,
    `retried_calls` Int64,
    `fallback_calls` Int64,
    `unpriced_calls` Int64,
    `total_cost` Decimal(38, 18) COMMENT 'Cost of all calls of the tasks, failed and retried included',
    `input_tokens` Int64,
    `cache_read_tokens` Int64,
    `cache_write_tokens` Int64,
    `output_tokens` Int64,
    `reasoning_tokens` Int64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, scenario_id, environment, owner, outcome, open_deadline)
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 8192
COMMENT 'Tasks, outcomes and cost per hour, scenario, environment and owner; always read with sum()';

CREATE MATERIALIZED VIEW task_costs_hourly_mv TO task_costs_hourly
(
    `hour` DateTime('UTC'),
    `scenario_id` LowCardinality(String),
    `environment` LowCardinality(String),
    `owner` LowCardinality(String),
    `outcome` LowCardinality(String),
    `open_deadline` DateTime64(3, 'UTC'),
    `tasks` Int64,
    `calls` Int64,
    `failed_calls` Int64,
    `retried_calls` Int64,
    `fallback_calls` Int64,
    `unpriced_calls` Int64,
    `total_cost` Decimal(38, 18),
    `input_tokens` Int64,
    `cache_read_tokens` Int64,
    `cache_write_tokens` Int64,
    `output_tokens` Int64,
    `reasoning_tokens` Int64
)
AS SELECT
    toStartOfHour(toDateTime(first_event_at, 'UTC')) AS hour,
    scenario_id,
    environment,
    owner,
    outcome,
    if(outcome = '', outcome_deadline, toDateTime64(0, 3, 'UTC')) AS open_deadline,
    sum(toInt64(sign)) AS tasks,
    sum(sign * toInt64(calls)) AS calls,
    sum(sign * toInt64(failed_calls)) AS failed_calls,
    sum(sign * toInt64(retried_calls)) AS retried_calls,
    sum(sign * toInt64(fallback_calls)) AS fallback_calls,
    sum(sign * toInt64(unpriced_calls)) AS unpriced_calls,
    sum(sign * total_cost) AS total_cost,
    sum(sign * toInt64(input_tokens)) AS input_tokens,
    sum(sign * toInt64(cache_read_tokens)) AS cache_read_tokens,
    sum(sign * toInt64(cache_write_tokens)) AS cache_write_tokens,
    sum(sign * toInt64(output_tokens)) AS output_tokens,
    sum(sign * toInt64(reasoning_tokens)) AS reasoning_tokens
FROM task_changes
GROUP BY
    hour,
    scenario_id,
    environment,
    owner,
    outcome,
    open_deadline;

CREATE TABLE task_outcomes_daily
(
    `day` Date COMMENT 'UTC date of the task\'s first event',
    `scenario_id` LowCardinality(String),
    `environment` LowCardinality(String),
    `owner` LowCardinality(String),
    `outcome` LowCardinality(String) COMMENT 'accepted | rejected | failed, or empty while none has arrived',
    `open_deadline` DateTime64(3, 'UTC') COMMENT 'Outcome deadline of tasks without an outcome; 1970-01-01 for tasks with one',
    `tasks` Int64 COMMENT 'Number of tasks (sum of signs)',
    `calls` Int64,
    `failed_calls` Int64,
    `retried_calls` Int64,
    `fallback_calls` Int64,
    `unpriced_calls` Int64,
    `total_cost` Decimal(38, 18)
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (day, scenario_id, environment, owner, outcome, open_deadline)
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 8192
COMMENT 'Tasks and their cost per day, scenario, environment, owner and outcome; always read with sum()';

CREATE MATERIALIZED VIEW task_outcomes_daily_mv TO task_outcomes_daily
(
    `day` Date,
    `scenario_id` LowCardinality(String),
    `environment` LowCardinality(String),
    `owner` LowCardinality(String),
    `outcome` LowCardinality(String),
    `open_deadline` DateTime64(3, 'UTC'),
    `tasks` Int64,
    `calls` Int64,
    `failed_calls` Int64,
    `retried_calls` Int64,
    `fallback_calls` Int64,
    `unpriced_calls` Int64,
    `total_cost` Decimal(38, 18)
)
AS SELECT
    toDate(first_event_at) AS day,
    scenario_id,
    environment,
    owner,
    outcome,
    if(outcome = '', outcome_deadline, toDateTime64(0, 3, 'UTC')) AS open_deadline,
    sum(toInt64(sign)) AS tasks,
    sum(sign * toInt64(calls)) AS calls,
    sum(sign * toInt64(failed_calls)) AS failed_calls,
    sum(sign * toInt64(retried_calls)) AS retried_calls,
    sum(sign * toInt64(fallback_calls)) AS fallback_calls,
    sum(sign * toInt64(unpriced_calls)) AS unpriced_calls,
    sum(sign * total_cost) AS total_cost
FROM task_changes
GROUP BY
    day,
    scenario_id,
    environment,
    owner,
    outcome,
    open_deadline;

CREATE TABLE task_states
(
    `task_id` String,
    `seq` UInt64 COMMENT 'Increases with every change the sink writes for the task',
    `base` String COMMENT 'Merged state of earlier starts that left stage 1 (JSON; empty: none)' CODEC(ZSTD(3)),
    `current` String COMMENT 'Latest state stage 1 reported for the current start (JSON; empty: none)' CODEC(ZSTD(3)),
    `pending` Array(String) COMMENT 'Event ids stage 1 applied that the row lacks (a diverged snapshot); empty when whole',
    `events` UInt32 COMMENT 'Distinct events the task row reflects (base and current)',
    `evictions` UInt32 COMMENT 'How often the task state left stage 1 and was kept as base',
    `written_at` DateTime64(3, 'UTC') DEFAULT now64(3),
    `plan_id` String COMMENT 'The sink batch that wrote this row (see sink_plans)',
    INDEX plan_idx plan_id TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree(seq)
ORDER BY task_id
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 8192
COMMENT 'Stage-1 state per task as the sink applied it: event ids, base of earlier starts, pending events';

CREATE TABLE tasks
(
    `task_id` String,
    `version` UInt64 COMMENT 'Distinct events applied * 2^20 + number of reprices applied; the highest version is the current row',
    `scenario_id` LowCardinality(String),
    `environment` LowCardinality(String),
    `owner` LowCardinality(String),
    `first_event_at` DateTime64(3, 'UTC'),
    `last_event_at` DateTime64(3, 'UTC'),
    `started_at` Nullable(DateTime64(3, 'UTC')),
    `completed_at` Nullable(DateTime64(3, 'UTC')),
    `calls` UInt32,
    `failed_calls` UInt32,
    `retried_calls` UInt32,
    `fallback_calls` UInt32,
    `unpriced_calls` UInt32,
    `total_cost` Decimal(38, 18) COMMENT 'Sum of the cost of all priced calls of the task',
    `input_tokens` UInt64,
    `cache_read_tokens` UInt64,
    `cache_write_tokens` UInt64,
    `output_tokens` UInt64,
    `reasoning_tokens` UInt64,
    `outcome` LowCardinality(String) COMMENT 'accepted | rejected | failed, or empty while unresolved',
    `outcome_source` LowCardinality(String),
    `outcome_at` Nullable(DateTime64(3, 'UTC')),
    `outcome_deadline` DateTime64(3, 'UTC') DEFAULT toStartOfHour(last_event_at + toIntervalDay(1)) + toIntervalHour(1) COMMENT 'First whole hour after last event + outcome window; no outcome by then = unresolved',
    `reprice_cost_delta` Decimal(38, 18) DEFAULT 0 COMMENT 'Sum over reprices of (new - old) cost of this task\'s calls; included in total_cost',
    `reprice_priced_calls` UInt32 DEFAULT 0 COMMENT 'Calls unpriced by stage 1 that a reprice priced; already subtracted from unpriced_calls',
    `models` Array(LowCardinality(String)) COMMENT 'Distinct models of the task\'s calls as the gateway reported them, sorted',
    `experiment` LowCardinality(String) DEFAULT '' COMMENT 'attributes.experiment: the latest task event that sets it, else the earliest call; empty when none',
    `ingested_at` DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY task_id
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 8192
COMMENT 'One row per task (latest version wins): its calls joined, priced and summed';

CREATE VIEW v_arm_outcomes_daily
(
    `day` Date,
    `scenario_id` LowCardinality(String),
    `environment` LowCardinality(String),
    `owner` LowCardinality(String),
    `dimension` LowCardinality(String),
    `arm` LowCardinality(String),
    `tasks` Int64,
    `accepted` Int64,
    `rejected` Int64,
    `failed` Int64,
    `unresolved` Int64,
    `pending` Int64,
    `calls` Int64,
    `total_cost` Decimal(38, 18),
    `accepted_cost` Decimal(38, 18),
    `waste_cost` Decimal(38, 18),
    `cost_per_task` Decimal(38, 18),
    `cost_per_accepted_outcome` Nullable(Decimal(38, 18)),
    `acceptance_rate` Float64,
    `final` UInt8
)
COMMENT 'Per day, scenario, environment, owner and arm (dimension model: tasks that used the model, whole task cost; dimension experiment: tasks labelled attributes.experiment): tasks by outcome, cost, waste, cost per accepted outcome, acceptance rate; final = no task still inside its outcome window'
AS SELECT
    day,
    scenario_id,
    environment,
    owner,
    dimension,
    arm,
    n_tasks AS tasks,
    n_accepted AS accepted,
    n_rejected AS rejected,
    n_failed AS failed,
    n_unresolved AS unresolved,
    n_pending AS pending,
    n_calls AS calls,
    cost AS total_cost,
    cost_accepted AS accepted_cost,
    (cost - cost_accepted) - cost_pending AS waste_cost,
    cost / n_tasks AS cost_per_task,
    if(n_accepted = 0, NULL, cost / n_accepted) AS cost_per_accepted_outcome,
    n_accepted / n_tasks AS acceptance_rate,
    n_pending = 0 AS final
FROM
(
    SELECT
        day,
        scenario_id,
        environment,
        owner,
        dimension,
        arm,
        sum(tasks) AS n_tasks,
        sumIf(tasks, outcome = 'accepted') AS n_accepted,
        sumIf(tasks, outcome = 'rejected') AS n_rejected,
        sumIf(tasks, outcome = 'failed') AS n_failed,
        sumIf(tasks, (outcome = '') AND (open_deadline <= now64(3))) AS n_unresolved,
        sumIf(tasks, (outcome = '') AND (open_deadline > now64(3))) AS n_pending,
        sum(calls) AS n_calls,
        sum(total_cost) AS cost,
        sumIf(total_cost, outcome = 'accepted') AS cost_accepted,
        sumIf(total_cost, (outcome = '') AND (open_deadline > now64(3))) AS cost_pending
    FROM task_arms_daily
    GROUP BY
        day,
        scenario_id,
        environment,
        owner,
        dimension,
        arm
    HAVING n_tasks != 0
);

CREATE VIEW v_cache_economics_daily
(
    `day` Date,
    `scenario_id` LowCardinality(String),
    `environment` LowCardinality(String),
    `owner` LowCardinality(String),
    `provider` LowCardinality(String),
    `model` LowCardinality(String),
    `calls` Int64,
    `input_tokens` Int64,
    `cache_read_tokens` Int64,
    `cache_write_tokens` Int64,
    `cache_hit_rate` Nullable(Float64),
    `cache_read_cost` Decimal(38, 18),
    `cache_read_savings` Decimal(38, 18),
    `cache_write_cost` Decimal(38, 18),
    `cache_write_premium` Decimal(38, 18),
    `net_cache_savings` Decimal(38, 18),
    `effective_input_cost` Decimal(38, 18),
    `stable_prefix_cost` Decimal(38, 18),
    `dynamic_input_cost` Decimal(38, 18)
)
COMMENT 'Prompt cache economics per day and model: hit rate on input, what cache reads saved against the input rate, what cache writes cost above it, and the effective input cost split into the stable (cached) prefix and the dynamic part'
AS SELECT
    toDate(hour) AS day,
    scenario_id,
    environment,
    owner,
    provider,
    model,
    sum(calls) AS calls,
    sum(input_tokens) AS input_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    if(((input_tokens + cache_read_tokens) + cache_write_tokens) = 0, NULL, cache_read_tokens / ((input_tokens + cache_read_tokens) + cache_write_tokens)) AS cache_hit_rate,
    sum(cost_cache_read) AS cache_read_cost,
    sum(cost_cache_read_uncached) - sum(cost_cache_read) AS cache_read_savings,
    sum(cost_cache_write) AS cache_write_cost,
    sum(cost_cache_write) - sum(cost_cache_write_uncached) AS cache_write_premium,
    cache_read_savings - cache_write_premium AS net_cache_savings,
    (sum(cost_input) + sum(cost_cache_read)) + sum(cost_cache_write) AS effective_input_cost,
    sum(cost_cache_read) + sum(cost_cache_write) AS stable_prefix_cost,
    sum(cost_input) AS dynamic_input_cost
FROM call_costs_hourly
GROUP BY
    day,
    scenario_id,
    environment,
    owner,
    provider,
    model
HAVING calls != 0;

CREATE VIEW v_call_overhead_daily
(
    `day` Date,
    `scenario_id` LowCardinality(String),
    `environment` LowCardinality(String),
    `owner` LowCardinality(String),
    `calls` Int64,
    `total_cost` Decimal(38, 18),
    `retry_calls` Int64,
    `retry_cost` Decimal(38, 18),
    `fallback_calls` Int64,
    `fallback_cost` Decimal(38, 18),
    `failed_calls` Int64,
    `failed_call_cost` Decimal(38, 18),
    `unpriced_calls` Int64,
    `retry_rate` Float64,
    `failed_call_rate` Float64
)
COMMENT 'Overhead per day and call label: cost of retries (attempt > 1), of fallbacks and of failed calls (status other than ok), against all calls'
AS SELECT
    toDate(hour) AS day,
    scenario_id,
    environment,
    owner,
    sum(calls) AS calls,
    sum(cost_total) AS total_cost,
    sumIf(h.calls, is_retry = 1) AS retry_calls,
    sumIf(cost_total, is_retry = 1) AS retry_cost,
    sumIf(h.calls, is_fallback = 1) AS fallback_calls,
    sumIf(cost_total, is_fallback = 1) AS fallback_cost,
    sumIf(h.calls, status != 'ok') AS failed_calls,
    sumIf(cost_total, status != 'ok') AS failed_call_cost,
    sum(unpriced_calls) AS unpriced_calls,
    retry_calls / calls AS retry_rate,
    failed_calls / calls AS failed_call_rate
FROM call_costs_hourly AS h
GROUP BY
    day,
    scenario_id,
    environment,
    owner
HAVING calls != 0;

CREATE VIEW v_cost_by_role_daily
(
    `day` Date,
    `scenario_id` LowCardinality(String),
    `environment` LowCardinality(String),
    `owner` LowCardinality(String),
    `role` LowCardinality(String),
    `model` LowCardinality(String),
    `calls` Int64,
    `total_cost` Decimal(38, 18),
    `prompt_tokens` Int64,
    `completion_tokens` Int64
)
COMMENT 'Cost per day by role of the call inside its task (classifier, generator, critic, refiner, judge, ...) and model: the hidden chains'
AS SELECT
    toDate(hour) AS day,
    scenario_id,
    environment,
    owner,
    role,
    model,
    sum(calls) AS calls,
    sum(cost_total) AS total_cost,
    sum((input_tokens + cache_read_tokens) + cache_write_tokens) AS prompt_tokens,
    sum(output_tokens + reasoning_tokens) AS completion_tokens
FROM call_costs_hourly
GROUP BY
    day,
    scenario_id,
    environment,
    owner,
    role,
    model
HAVING calls != 0;

CREATE VIEW v_cost_per_outcome
(
    `day` Date,
    `scenario_id` LowCardinality(String),
    `environment` LowCardinality(String),
    `tasks` Int64,
    `accepted` Int64,
    `rejected` Int64,
    `failed` Int64,
    `unresolved` Int64,
    `pending` Int64,
    `total_cost` Decimal(38, 18),
    `accepted_cost` Decimal(38, 18),
    `cost_per_task` Decimal(38, 18),
    `cost_per_accepted_outcome` Nullable(Decimal(38, 18)),
    `final` UInt8,
    `unpriced_calls` Int64
)
COMMENT 'Cost per accepted outcome per day, scenario and environment; final = no task still inside its outcome window; unpriced_calls > 0: its costs are lower bounds'
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
        sumIf(tasks, (outcome = '') AND (open_deadline <= now64(3))) AS n_unresolved,
        sumIf(tasks, (outcome = '') AND (open_deadline > now64(3))) AS n_pending,
        sum(total_cost) AS cost,
        sumIf(total_cost, outcome = 'accepted') AS cost_accepted,
        sum(unpriced_calls) AS n_unpriced
    FROM task_outcomes_daily
    GROUP BY
        day,
        scenario_id,
        environment
    HAVING n_tasks != 0
);

CREATE VIEW v_cost_reconciliation_calls
(
    `event_id` String,
    `task_id` String,
    `ts` DateTime64(3, 'UTC'),
    `provider` LowCardinality(String),
    `model` LowCardinality(String),
    `service_tier` LowCardinality(String),
    `status` LowCardinality(String),
    `currency` LowCardinality(String),
    `price_book_version` LowCardinality(String),
    `computed_cost` Nullable(Decimal(38, 18)),
    `reported_cost` Nullable(Decimal(38, 18)),
    `difference` Nullable(Decimal(38, 18)),
    `relative_difference` Nullable(Float64),
    `verdict` String
)
COMMENT 'Every call with a cost its source reported, beside the computed cost; verdict agrees | differs | unpriced | not_comparable_currency | unreadable_report'
AS SELECT
    event_id,
    task_id,
    ts,
    provider,
    model,
    service_tier,
    status,
    currency,
    price_book_version,
    cost_total AS computed_cost,
    toDecimal128OrNull(attributes['provider_reported_cost'], 18) AS reported_cost,
    computed_cost - reported_cost AS difference,
    if(reported_cost = 0, NULL, toFloat64(difference) / toFloat64(reported_cost)) AS relative_difference,
    multiIf(reported_cost IS NULL, 'unreadable_report', computed_cost IS NULL, 'unpriced', currency != 'USD', 'not_comparable_currency', abs(difference) > greatest(reported_cost * toDecimal128('0.01', 18), toDecimal128('0.000001', 18)), 'differs', 'agrees') AS verdict
FROM calls
FINAL
WHERE (attributes['provider_reported_cost']) != '';

CREATE VIEW v_cost_reconciliation_daily
(
    `day` Date,
    `provider` LowCardinality(String),
    `model` LowCardinality(String),
    `calls_reported` UInt64,
    `calls_differing` UInt64,
    `calls_unpriced` UInt64,
    `calls_not_comparable` UInt64,
    `reported_cost` Nullable(Decimal(38, 18)),
    `computed_cost` Nullable(Decimal(38, 18)),
    `difference` Nullable(Decimal(38, 18))
)
COMMENT 'Reported against computed cost (USD) per day, provider and model, over the calls that compare; calls differing beyond tolerance counted, unpriced and other-currency calls counted apart'
AS SELECT
    toDate(ts) AS day,
    provider,
    model,
    count() AS calls_reported,
    countIf(verdict = 'differs') AS calls_differing,
    countIf(verdict = 'unpriced') AS calls_unpriced,
    countIf(verdict IN ('not_comparable_currency', 'unreadable_report')) AS calls_not_comparable,
    sumIf(reported_cost, (verdict IN ('agrees', 'differs'))) AS reported_cost,
    sumIf(computed_cost, (verdict IN ('agrees', 'differs'))) AS computed_cost,
    computed_cost - reported_cost AS difference
FROM v_cost_reconciliation_calls
GROUP BY
    day,
    provider,
    model;

CREATE VIEW v_costliest_tasks
(
    `task_id` String,
    `day` Date,
    `scenario_id` LowCardinality(String),
    `environment` LowCardinality(String),
    `owner` LowCardinality(String),
    `outcome` LowCardinality(String),
    `total_cost` Decimal(38, 18),
    `calls` UInt32,
    `failed_calls` UInt32,
    `retried_calls` UInt32,
    `fallback_calls` UInt32,
    `unpriced_calls` UInt32,
    `first_event_at` DateTime64(3, 'UTC'),
    `last_event_at` DateTime64(3, 'UTC')
)
COMMENT 'The 100 costliest tasks of each day (UTC day of first event); their calls: v_task_call_chain'
AS SELECT
    t.task_id AS task_id,
    toDate(t.first_event_at) AS day,
    t.scenario_id AS scenario_id,
    t.environment AS environment,
    t.owner AS owner,
    t.outcome AS outcome,
    t.total_cost AS total_cost,
    t.calls AS calls,
    t.failed_calls AS failed_calls,
    t.retried_calls AS retried_calls,
    t.fallback_calls AS fallback_calls,
    t.unpriced_calls AS unpriced_calls,
    t.first_event_at AS first_event_at,
    t.last_event_at AS last_event_at
FROM tasks AS t
FINAL
ORDER BY
    total_cost DESC,
    task_id ASC
LIMIT 100 BY day;

CREATE VIEW v_fixed_cost_allocation_daily
(
    `day` Date,
    `scenario_id` String,
    `item` String,
    `category` LowCardinality(String),
    `rule` LowCardinality(String),
    `allocated_cost` Decimal(38, 18)
)
COMMENT 'Each current fixed cost item accrued evenly over the days of its period up to today (UTC), each day\'s part shared among scenarios by the rule: usage_share by that day\'s variable cost (task day), weights by fixed weights'
AS SELECT
    u.day AS day,
    u.scenario_id AS scenario_id,
    f.item AS item,
    f.category AS category,
    f.rule AS rule,
    toDecimal128((toDecimal256(f.amount, 18) * toDecimal256(u.cost, 18)) / (sum(toDecimal256(u.cost, 18)) OVER (PARTITION BY f.item, u.day) * toUInt32(dateDiff('day', f.period_start, f.period_end))), 18) AS allocated_cost
FROM v_fixed_costs AS f
CROSS JOIN
(
    SELECT
        day,
        scenario_id,
        sum(total_cost) AS cost
    FROM task_outcomes_daily
    GROUP BY
        day,
        scenario_id
    HAVING cost > 0
) AS u
WHERE (f.rule = 'usage_share') AND (u.day >= f.period_start) AND (u.day < f.period_end) AND (empty(f.scenarios) OR has(f.scenarios, u.scenario_id))
UNION ALL
SELECT
    d AS day,
    s AS scenario_id,
    w.item AS item,
    w.category AS category,
    w.rule AS rule,
    toDecimal128((toDecimal256(w.amount, 18) * toDecimal256(wt, 18)) / (toDecimal256(w.weight_sum, 18) * w.days), 18) AS allocated_cost
FROM
(
    SELECT
        item,
        category,
        rule,
        amount,
        period_start,
        weights,
        arraySum(mapValues(weights)) AS weight_sum,
        toUInt32(dateDiff('day', period_start, period_end)) AS days
    FROM v_fixed_costs
    WHERE rule = 'weights'
) AS w
ARRAY JOIN
    mapKeys(w.weights) AS s,
    mapValues(w.weights) AS wt
ARRAY JOIN arrayMap(i -> (w.period_start + i), range(w.days)) AS d
WHERE d <= toDate(now(), 'UTC');

CREATE VIEW v_fixed_cost_items
(
    `item` String,
    `category` LowCardinality(String),
    `period_start` Date,
    `period_end` Date,
    `rule` LowCardinality(String),
    `amount` Decimal(38, 18),
    `currency` LowCardinality(String),
    `allocated_cost` Decimal(38, 18),
    `unallocated_cost` Decimal(38, 18)
)
COMMENT 'Current fixed cost items: declared, allocated so far, and unallocated (days of the period without usage, or still to come; truncation leaves at most 1e-18 per allocated row)'
AS SELECT
    f.item AS item,
    f.category AS category,
    f.period_start AS period_start,
    f.period_end AS period_end,
    f.rule AS rule,
    f.amount AS amount,
    f.currency AS currency,
    a.allocated AS allocated_cost,
    f.amount - a.allocated AS unallocated_cost
FROM v_fixed_costs AS f
LEFT JOIN
(
    SELECT
        item,
        sum(allocated_cost) AS allocated
    FROM v_fixed_cost_allocation_daily
    GROUP BY item
) AS a USING (item);

CREATE VIEW v_fixed_costs
(
    `item` String,
    `category` LowCardinality(String),
    `period_start` Date,
    `period_end` Date,
    `amount` Decimal(38, 18),
    `currency` LowCardinality(String),
    `rule` LowCardinality(String),
    `scenarios` Array(String),
    `weights` Map(String, Decimal(38, 18)),
    `note` String,
    `loaded_at` DateTime64(3, 'UTC'),
    `source` String
)
COMMENT 'The fixed costs of the latest load'
AS SELECT
    item,
    category,
    period_start,
    period_end,
    amount,
    currency,
    rule,
    scenarios,
    weights,
    note,
    loaded_at,
    source
FROM fixed_costs
WHERE loaded_at = (
    SELECT max(loaded_at)
    FROM fixed_costs
);

CREATE VIEW v_focus_costs
(
    `BilledCost` Decimal(38, 18),
    `EffectiveCost` Decimal(38, 18),
    `ListCost` Decimal(38, 18),
    `ContractedCost` Decimal(38, 18),
    `ContractedUnitPrice` Decimal(38, 18),
    `ListUnitPrice` Decimal(38, 18),
    `BillingCurrency` LowCardinality(String),
    `PricingCurrency` LowCardinality(String),
    `PricingCurrencyListUnitPrice` Decimal(38, 18),
    `PricingCurrencyContractedUnitPrice` Decimal(38, 18),
    `PricingCurrencyEffectiveCost` Decimal(38, 18),
    `ChargePeriodStart` DateTime('UTC'),
    `ChargePeriodEnd` DateTime('UTC'),
    `BillingPeriodStart` DateTime('UTC'),
    `BillingPeriodEnd` DateTime('UTC'),
    `BillingAccountId` LowCardinality(String),
    `BillingAccountName` LowCardinality(String),
    `ChargeCategory` String,
    `ChargeClass` Nullable(String),
    `ChargeFrequency` String,
    `PricingCategory` String,
    `ChargeDescription` String,
    `ProviderName` LowCardinality(String),
    `PublisherName` LowCardinality(String),
    `InvoiceIssuerName` LowCardinality(String),
    `ServiceProviderName` LowCardinality(String),
    `HostProviderName` LowCardinality(String),
    `ServiceCategory` String,
    `ServiceSubcategory` String,
    `ServiceName` String,
    `SkuId` String,
    `SkuMeter` String,
    `ConsumedQuantity` Decimal(38, 9),
    `ConsumedUnit` String,
    `PricingQuantity` Decimal(38, 9),
    `PricingUnit` String,
    `Tags` String,
    `x_Calls` UInt64,
    `x_UsageClass` LowCardinality(String),
    `x_ServiceTier` LowCardinality(String),
    `x_Model` LowCardinality(String),
    `x_PriceBookVersion` LowCardinality(String),
    `x_PriceOverlay` LowCardinality(String)
)
COMMENT 'FinOps FOCUS 1.2/1.3 usage rows per hour, provider, model, service tier, usage class (SkuMeter), tag set and unit price; ListCost before negotiated overlays, ContractedCost/BilledCost after; unit prices from focus_rates, which costflow focus export loads from the price book'
AS SELECT
    toDecimal128(roundBankers(toDecimal256(contracted_price, 18) * toDecimal256(pricing_quantity, 9), 18), 18) AS BilledCost,
    BilledCost AS EffectiveCost,
    toDecimal128(roundBankers(toDecimal256(list_price, 18) * toDecimal256(pricing_quantity, 9), 18), 18) AS ListCost,
    BilledCost AS ContractedCost,
    toDecimal128(contracted_price, 18) AS ContractedUnitPrice,
    toDecimal128(list_price, 18) AS ListUnitPrice,
    toString(currency) AS BillingCurrency,
    toString(pricing_currency) AS PricingCurrency,
    toDecimal128(pricing_list_price, 18) AS PricingCurrencyListUnitPrice,
    toDecimal128(pricing_contracted_price, 18) AS PricingCurrencyContractedUnitPrice,
    toDecimal128(roundBankers(toDecimal256(pricing_contracted_price, 18) * toDecimal256(pricing_quantity, 9), 18), 18) AS PricingCurrencyEffectiveCost,
    hour AS ChargePeriodStart,
    hour + toIntervalHour(1) AS ChargePeriodEnd,
    toDateTime(billing_month, 'UTC') AS BillingPeriodStart,
    toDateTime(addMonths(billing_month, 1), 'UTC') AS BillingPeriodEnd,
    toString(provider) AS BillingAccountId,
    toString(provider) AS BillingAccountName,
    'Usage' AS ChargeCategory,
    CAST(NULL, 'Nullable(String)') AS ChargeClass,
    'Usage-Based' AS ChargeFrequency,
    'Standard' AS PricingCategory,
    concat(provider, ' ', model, ' ', lower(meter_name), if(service_tier = 'standard', '', concat(' (', service_tier, ' tier)'))) AS ChargeDescription,
    toString(provider) AS ProviderName,
    toString(provider) AS PublisherName,
    toString(provider) AS InvoiceIssuerName,
    toString(provider) AS ServiceProviderName,
    toString(provider) AS HostProviderName,
    'AI and Machine Learning' AS ServiceCategory,
    'Generative AI' AS ServiceSubcategory,
    concat(provider, ' ', model) AS ServiceName,
    concat(provider, '/', model, '/', service_tier, '/', meter) AS SkuId,
    meter_name AS SkuMeter,
    toDecimal128(consumed_quantity, 9) AS ConsumedQuantity,
    multiIf(meter = 'request', 'Requests', startsWith(meter, 'unit:'), substring(meter, 6), 'Tokens') AS ConsumedUnit,
    toDecimal128(pricing_quantity, 9) AS PricingQuantity,
    multiIf(meter = 'request', 'Requests', startsWith(meter, 'unit:'), substring(meter, 6), '1000000 Tokens') AS PricingUnit,
    toJSONString(mapFilter((k, v) -> (v != ''), map('scenario_id', toString(scenario_id), 'environment', toString(environment), 'owner', toString(owner), 'role', toString(role)))) AS Tags,
    calls AS x_Calls,
    toString(meter) AS x_UsageClass,
    toString(service_tier) AS x_ServiceTier,
    toString(model) AS x_Model,
    toString(price_book_version) AS x_PriceBookVersion,
    toString(price_overlay) AS x_PriceOverlay
FROM
(
    SELECT
        toStartOfHour(toDateTime(u.ts, 'UTC')) AS hour,
        u.provider AS provider,
        u.model AS model,
        u.service_tier AS service_tier,
        u.scenario_id AS scenario_id,
        u.environment AS environment,
        u.owner AS owner,
        u.role AS role,
        u.currency AS currency,
        u.price_book_version AS price_book_version,
        u.price_overlay AS price_overlay,
        r.meter AS meter,
        r.pricing_currency AS pricing_currency,
        r.list_unit_price AS pricing_list_price,
        r.contracted_unit_price AS pricing_contracted_price,
        toDecimal128(roundBankers(toDecimal256(r.list_unit_price, 18) * toDecimal256(u.fx, 18), 18), 18) AS list_price,
        toDecimal128(roundBankers(toDecimal256(r.contracted_unit_price, 18) * toDecimal256(u.fx, 18), 18), 18) AS contracted_price,
        sum(u.quantity) AS consumed_quantity,
        if((meter = 'request') OR startsWith(meter, 'unit:'), consumed_quantity, consumed_quantity / 1000000) AS pricing_quantity,
        count() AS calls,
        toStartOfMonth(hour) AS billing_month,
        multiIf(meter = 'input', 'Input tokens', meter = 'cache_read', 'Cache read tokens', meter = 'cache_write_5m', 'Cache write tokens (5 minutes)', meter = 'cache_write_1h', 'Cache write tokens (1 hour)', meter = 'output', 'Output tokens', meter = 'reasoning', 'Reasoning tokens', meter = 'input_audio', 'Input audio tokens', meter = 'cache_audio_read', 'Cache read audio tokens', meter = 'output_audio', 'Output audio tokens', meter = 'input_image', 'Input image tokens', meter = 'output_image', 'Output image tokens', meter = 'request', 'Requests', substring(meter, 6)) AS meter_name
    FROM
    (
        SELECT
            ts,
            provider,
            model,
            service_tier,
            scenario_id,
            environment,
            owner,
            role,
            currency,
            price_book_version,
            price_overlay,
            ifNull(fx_rate, toDecimal128(1, 18)) AS fx,
            toInt64((((((input_tokens + cache_read_tokens) + cache_write_tokens) + cache_write_1h_tokens) + input_audio_tokens) + cache_audio_read_tokens) + input_image_tokens) AS prompt,
            toUInt8(toDayOfWeek(ts, 0, 'UTC')) AS weekday,
            toUInt16((toHour(ts) * 60) + toMinute(ts)) AS minute_of_day,
            m.1 AS meter,
            m.2 AS quantity
        FROM calls
        FINAL
        ARRAY JOIN (arrayFilter(x -> ((x.2) != 0), arrayConcat([('input', toDecimal128(input_tokens, 9)), ('cache_read', toDecimal128(cache_read_tokens, 9)), ('cache_write_5m', toDecimal128(cache_write_tokens, 9)), ('cache_write_1h', toDecimal128(cache_write_1h_tokens, 9)), ('output', toDecimal128(output_tokens, 9)), ('reasoning', toDecimal128(reasoning_tokens, 9)), ('input_audio', toDecimal128(input_audio_tokens, 9)), ('cache_audio_read', toDecimal128(cache_audio_read_tokens, 9)), ('output_audio', toDecimal128(output_audio_tokens, 9)), ('input_image', toDecimal128(input_image_tokens, 9)), ('output_image', toDecimal128(output_image_tokens, 9)), ('request', toDecimal128(1, 9))], arrayMap((k, v) -> (concat('unit:', k), toDecimal128(v, 9)), mapKeys(units), mapValues(units))))) AS m
        WHERE cost_total IS NOT NULL
    ) AS u
    INNER JOIN
    (
        SELECT
            price_book_version,
            provider,
            model,
            service_tier,
            owner,
            environment,
            valid_from,
            valid_to,
            prompt_above,
            prompt_upto,
            off_peak,
            off_peak_windows,
            price_overlay,
            meter,
            pricing_currency,
            list_unit_price,
            contracted_unit_price
        FROM focus_rates
        FINAL
    ) AS r ON (u.price_book_version = r.price_book_version) AND (u.provider = r.provider) AND (u.model = r.model) AND (u.service_tier = r.service_tier) AND (u.owner = r.owner) AND (u.environment = r.environment) AND (u.price_overlay = r.price_overlay) AND (u.meter = r.meter)
    WHERE (u.ts >= r.valid_from) AND (u.ts < r.valid_to) AND (u.prompt > r.prompt_above) AND (u.prompt <= r.prompt_upto) AND (r.off_peak = arrayExists(w -> (((w.1) = u.weekday) AND ((w.2) <= u.minute_of_day) AND (u.minute_of_day < (w.3))), r.off_peak_windows))
    GROUP BY
        hour,
        provider,
        model,
        service_tier,
        scenario_id,
        environment,
        owner,
        role,
        currency,
        price_book_version,
        price_overlay,
        meter,
        pricing_currency,
        pricing_list_price,
        pricing_contracted_price,
        list_price,
        contracted_price
);

CREATE VIEW v_model_calls_daily
(
    `day` Date,
    `scenario_id` LowCardinality(String),
    `environment` LowCardinality(String),
    `owner` LowCardinality(String),
    `provider` LowCardinality(String),
    `model` LowCardinality(String),
    `calls` Int64,
    `raw_token_cost` Decimal(38, 18),
    `cache_adjusted_cost` Decimal(38, 18),
    `retry_rate` Float64,
    `quality_pass_rate` Nullable(Float64),
    `latency_p50_ms` Nullable(Float64),
    `latency_p95_ms` Nullable(Float64)
)
COMMENT 'Per day, scenario and model (call labels): calls, raw token cost (cache tokens at the input rate), cache-adjusted (billed) cost, retry rate, quality pass rate (ok among ok + invalid_output), latency p50/p95 (1% bins)'
AS WITH
    (bins, n, pct) -> (bins[arrayFirstIndex(c -> (c >= intDiv((n * pct) + 99, 100)), arrayCumSum(arrayMap(b -> (b.2), bins)))]) AS bin_at
SELECT
    c.day AS day,
    c.scenario_id AS scenario_id,
    c.environment AS environment,
    c.owner AS owner,
    c.provider AS provider,
    c.model AS model,
    c.calls AS calls,
    c.raw_token_cost AS raw_token_cost,
    c.cost AS cache_adjusted_cost,
    c.retry_calls / c.calls AS retry_rate,
    if(c.judged = 0, NULL, c.passed / c.judged) AS quality_pass_rate,
    if(l.n = 0, NULL, ((bin_at(l.bins, l.n, 50)).3) / ((bin_at(l.bins, l.n, 50)).2)) AS latency_p50_ms,
    if(l.n = 0, NULL, ((bin_at(l.bins, l.n, 95)).3) / ((bin_at(l.bins, l.n, 95)).2)) AS latency_p95_ms
FROM
(
    SELECT
        toDate(hour) AS day,
        scenario_id,
        environment,
        owner,
        provider,
        model,
        sum(calls) AS calls,
        sum(cost_total) AS cost,
        (((sum(cost_total) - sum(cost_cache_read)) - sum(cost_cache_write)) + sum(cost_cache_read_uncached)) + sum(cost_cache_write_uncached) AS raw_token_cost,
        sumIf(h.calls, is_retry = 1) AS retry_calls,
        sumIf(h.calls, (status IN ('ok', 'invalid_output'))) AS judged,
        sumIf(h.calls, status = 'ok') AS passed
    FROM call_costs_hourly AS h
    GROUP BY
        day,
        scenario_id,
        environment,
        owner,
        provider,
        model
    HAVING calls != 0
) AS c
LEFT JOIN
(
    SELECT
        day,
        scenario_id,
        environment,
        owner,
        provider,
        model,
        arraySort(b -> (b.1), groupArray((latency_bin, n_bin, ms))) AS bins,
        sum(n_bin) AS n
    FROM
    (
        SELECT
            day,
            scenario_id,
            environment,
            owner,
            provider,
            model,
            latency_bin,
            sum(calls) AS n_bin,
            sum(latency_ms) AS ms
        FROM call_latency_daily
        GROUP BY
            day,
            scenario_id,
            environment,
            owner,
            provider,
            model,
            latency_bin
        HAVING n_bin != 0
    )
    GROUP BY
        day,
        scenario_id,
        environment,
        owner,
        provider,
        model
) AS l USING (day, scenario_id, environment, owner, provider, model);

CREATE VIEW v_model_decision_daily
(
    `day` Date,
    `scenario_id` LowCardinality(String),
    `environment` LowCardinality(String),
    `owner` LowCardinality(String),
    `provider` LowCardinality(String),
    `model` LowCardinality(String),
    `calls` Int64,
    `raw_token_cost` Decimal(38, 18),
    `cache_adjusted_cost` Decimal(38, 18),
    `retry_rate` Float64,
    `quality_pass_rate` Nullable(Float64),
    `latency_p50_ms` Nullable(Float64),
    `latency_p95_ms` Nullable(Float64),
    `tasks` Nullable(Int64),
    `accepted` Nullable(Int64),
    `acceptance_rate` Nullable(Float64),
    `task_cost` Nullable(Decimal(38, 18)),
    `cost_per_accepted_outcome` Nullable(Decimal(38, 18)),
    `final` Nullable(UInt8)
)
COMMENT 'The decision template per day, scenario and model: call-level figures (call labels) beside task-level ones (tasks that used the model, task labels): accepted-outcome rate and cost per accepted outcome of the whole task'
AS SELECT
    c.day AS day,
    c.scenario_id AS scenario_id,
    c.environment AS environment,
    c.owner AS owner,
    c.provider AS provider,
    c.model AS model,
    c.calls AS calls,
    c.raw_token_cost AS raw_token_cost,
    c.cache_adjusted_cost AS cache_adjusted_cost,
    c.retry_rate AS retry_rate,
    c.quality_pass_rate AS quality_pass_rate,
    c.latency_p50_ms AS latency_p50_ms,
    c.latency_p95_ms AS latency_p95_ms,
    if(a.matched, a.tasks, NULL) AS tasks,
    if(a.matched, a.accepted, NULL) AS accepted,
    if(a.matched, a.acceptance_rate, NULL) AS acceptance_rate,
    if(a.matched, a.total_cost, NULL) AS task_cost,
    if(a.matched, a.cost_per_accepted_outcome, NULL) AS cost_per_accepted_outcome,
    if(a.matched, a.final, NULL) AS final
FROM v_model_calls_daily AS c
LEFT JOIN
(
    SELECT
        day,
        scenario_id,
        environment,
        owner,
        arm AS model,
        tasks,
        accepted,
        acceptance_rate,
        total_cost,
        cost_per_accepted_outcome,
        final,
        1 AS matched
    FROM v_arm_outcomes_daily
    WHERE dimension = 'model'
) AS a USING (day, scenario_id, environment, owner, model);

CREATE VIEW v_outcomes_daily
(
    `day` Date,
    `scenario_id` LowCardinality(String),
    `environment` LowCardinality(String),
    `owner` LowCardinality(String),
    `tasks` Int64,
    `accepted` Int64,
    `rejected` Int64,
    `failed` Int64,
    `unresolved` Int64,
    `pending` Int64,
    `total_cost` Decimal(38, 18),
    `accepted_cost` Decimal(38, 18),
    `waste_cost` Decimal(38, 18),
    `rejected_cost` Decimal(38, 18),
    `failed_cost` Decimal(38, 18),
    `unresolved_cost` Decimal(38, 18),
    `pending_cost` Decimal(38, 18),
    `calls` Int64,
    `unpriced_calls` Int64,
    `cost_per_task` Decimal(38, 18),
    `cost_per_accepted_outcome` Nullable(Decimal(38, 18)),
    `acceptance_rate` Float64,
    `final` UInt8
)
COMMENT 'v_outcomes_hourly by UTC day of the task\'s first event'
AS SELECT
    toDate(hour) AS day,
    scenario_id,
    environment,
    owner,
    sum(v.tasks) AS tasks,
    sum(v.accepted) AS accepted,
    sum(v.rejected) AS rejected,
    sum(v.failed) AS failed,
    sum(v.unresolved) AS unresolved,
    sum(v.pending) AS pending,
    sum(v.total_cost) AS total_cost,
    sum(v.accepted_cost) AS accepted_cost,
    sum(v.waste_cost) AS waste_cost,
    sum(v.rejected_cost) AS rejected_cost,
    sum(v.failed_cost) AS failed_cost,
    sum(v.unresolved_cost) AS unresolved_cost,
    sum(v.pending_cost) AS pending_cost,
    sum(v.calls) AS calls,
    sum(v.unpriced_calls) AS unpriced_calls,
    sum(v.total_cost) / sum(v.tasks) AS cost_per_task,
    if(sum(v.accepted) = 0, NULL, sum(v.total_cost) / sum(v.accepted)) AS cost_per_accepted_outcome,
    sum(v.accepted) / sum(v.tasks) AS acceptance_rate,
    min(v.final) AS final
FROM v_outcomes_hourly AS v
GROUP BY
    day,
    scenario_id,
    environment,
    owner;

CREATE VIEW v_outcomes_hourly
(
    `hour` DateTime('UTC'),
    `scenario_id` LowCardinality(String),
    `environment` LowCardinality(String),
    `owner` LowCardinality(String),
    `tasks` Int64,
    `accepted` Int64,
    `rejected` Int64,
    `failed` Int64,
    `unresolved` Int64,
    `pending` Int64,
    `total_cost` Decimal(38, 18),
    `accepted_cost` Decimal(38, 18),
    `waste_cost` Decimal(38, 18),
    `rejected_cost` Decimal(38, 18),
    `failed_cost` Decimal(38, 18),
    `unresolved_cost` Decimal(38, 18),
    `pending_cost` Decimal(38, 18),
    `calls` Int64,
    `unpriced_calls` Int64,
    `cost_per_task` Decimal(38, 18),
    `cost_per_accepted_outcome` Nullable(Decimal(38, 18)),
    `acceptance_rate` Float64,
    `final` UInt8
)
COMMENT 'Per hour (of the task\'s first event), scenario, environment and owner: tasks by outcome, cost, waste (cost of rejected, failed and unresolved tasks), cost per task and per accepted outcome; final = no task still inside its outcome window'
AS SELECT
    hour,
    scenario_id,
    environment,
    owner,
    n_tasks AS tasks,
    n_accepted AS accepted,
    n_rejected AS rejected,
    n_failed AS failed,
    n_unresolved AS unresolved,
    n_pending AS pending,
    cost AS total_cost,
    cost_accepted AS accepted_cost,
    (cost_rejected + cost_failed) + cost_unresolved AS waste_cost,
    cost_rejected AS rejected_cost,
    cost_failed AS failed_cost,
    cost_unresolved AS unresolved_cost,
    cost_pending AS pending_cost,
    n_calls AS calls,
    n_unpriced AS unpriced_calls,
    cost / n_tasks AS cost_per_task,
    if(n_accepted = 0, NULL, cost / n_accepted) AS cost_per_accepted_outcome,
    n_accepted / n_tasks AS acceptance_rate,
    n_pending = 0 AS final
FROM
(
    SELECT
        hour,
        scenario_id,
        environment,
        owner,
        sum(tasks) AS n_tasks,
        sumIf(tasks, outcome = 'accepted') AS n_accepted,
        sumIf(tasks, outcome = 'rejected') AS n_rejected,
        sumIf(tasks, outcome = 'failed') AS n_failed,
        sumIf(tasks, (outcome = '') AND (open_deadline <= now64(3))) AS n_unresolved,
        sumIf(tasks, (outcome = '') AND (open_deadline > now64(3))) AS n_pending,
        sum(total_cost) AS cost,
        sumIf(total_cost, outcome = 'accepted') AS cost_accepted,
        sumIf(total_cost, outcome = 'rejected') AS cost_rejected,
        sumIf(total_cost, outcome = 'failed') AS cost_failed,
        sumIf(total_cost, (outcome = '') AND (open_deadline <= now64(3))) AS cost_unresolved,
        sumIf(total_cost, (outcome = '') AND (open_deadline > now64(3))) AS cost_pending,
        sum(calls) AS n_calls,
        sum(unpriced_calls) AS n_unpriced
    FROM task_costs_hourly
    GROUP BY
        hour,
        scenario_id,
        environment,
        owner
    HAVING n_tasks != 0
);

CREATE VIEW v_reprice_comparison
(
    `reprice_id` String,
    `repriced_at` DateTime64(3, 'UTC'),
    `provider` LowCardinality(String),
    `model` LowCardinality(String),
    `old_price_book_version` LowCardinality(String),
    `new_price_book_version` LowCardinality(String),
    `calls` UInt64,
    `previously_unpriced_calls` UInt64,
    `old_cost` Decimal(38, 18),
    `new_cost` Decimal(38, 18),
    `difference` Decimal(38, 18),
    `currency` String
)
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
GROUP BY
    reprice_id,
    provider,
    model,
    old_price_book_version,
    new_price_book_version;

CREATE VIEW v_scenario_full_cost_daily
(
    `day` Date,
    `scenario_id` String,
    `tasks` Int64,
    `accepted` Int64,
    `variable_cost` Decimal(38, 18),
    `fixed_cost` Decimal(38, 18),
    `full_cost` Decimal(38, 18),
    `cost_per_accepted_outcome` Nullable(Decimal(38, 18)),
    `full_cost_per_accepted_outcome` Nullable(Decimal(38, 18)),
    `final` UInt8
)
COMMENT 'Per day and scenario: variable cost (calls), allocated fixed cost, full cost, and cost per accepted outcome without and with fixed costs'
AS SELECT
    day,
    scenario_id,
    v.tasks AS tasks,
    v.accepted AS accepted,
    v.variable_cost AS variable_cost,
    a.fixed_cost AS fixed_cost,
    v.variable_cost + a.fixed_cost AS full_cost,
    if(v.accepted = 0, NULL, v.variable_cost / v.accepted) AS cost_per_accepted_outcome,
    if(v.accepted = 0, NULL, (v.variable_cost + a.fixed_cost) / v.accepted) AS full_cost_per_accepted_outcome,
    v.pending = 0 AS final
FROM
(
    SELECT
        o.day AS day,
        o.scenario_id AS scenario_id,
        sum(o.tasks) AS tasks,
        sumIf(o.tasks, o.outcome = 'accepted') AS accepted,
        sumIf(o.tasks, (o.outcome = '') AND (o.open_deadline > now64(3))) AS pending,
        sum(o.total_cost) AS variable_cost
    FROM task_outcomes_daily AS o
    GROUP BY
        day,
        scenario_id
    HAVING tasks != 0
) AS v
FULL OUTER JOIN
(
    SELECT
        day,
        scenario_id,
        sum(allocated_cost) AS fixed_cost
    FROM v_fixed_cost_allocation_daily
    GROUP BY
        day,
        scenario_id
) AS a USING (day, scenario_id);

CREATE VIEW v_task_call_chain
(
    `task_id` String,
    `event_id` String,
    `ts` DateTime64(3, 'UTC'),
    `provider` LowCardinality(String),
    `model` LowCardinality(String),
    `role` LowCardinality(String),
    `status` LowCardinality(String),
    `attempt` UInt16,
    `retry_of` String,
    `fallback_from` LowCardinality(String),
    `latency_ms` Nullable(UInt32),
    `input_tokens` UInt64,
    `cache_read_tokens` UInt64,
    `cache_write_tokens` UInt64,
    `output_tokens` UInt64,
    `reasoning_tokens` UInt64,
    `cost_total` Nullable(Decimal(38, 18)),
    `price_book_version` LowCardinality(String),
    `pricing_error` String,
    `cost_known` Nullable(Decimal(38, 18)),
    `unpriced_dimensions` Array(LowCardinality(String))
)
COMMENT 'Every call of a task in its chain, one row per call; filter by task_id, order by ts'
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
FROM calls
FINAL;

CREATE VIEW v_task_cost_histogram
(
    `day` Date,
    `scenario_id` LowCardinality(String),
    `environment` LowCardinality(String),
    `owner` LowCardinality(String),
    `cost_bin` Int16,
    `bin_lower` Float64,
    `bin_upper` Float64,
    `tasks` Int64,
    `total_cost` Decimal(38, 18)
)
COMMENT 'Cost per task as a histogram of 1% bins per day, scenario, environment and owner: sum the bins of any period and filter to get its exact-to-1% distribution'
AS SELECT
    day,
    scenario_id,
    environment,
    owner,
    cost_bin,
    if(cost_bin = -32768, 0, pow(1.01, cost_bin)) AS bin_lower,
    if(cost_bin = -32768, 0, pow(1.01, cost_bin + 1)) AS bin_upper,
    sum(tasks) AS tasks,
    sum(h.total_cost) AS total_cost
FROM task_cost_histogram_daily AS h
GROUP BY
    day,
    scenario_id,
    environment,
    owner,
    cost_bin
HAVING tasks != 0;

CREATE VIEW v_task_cost_tails_daily
(
    `day` Date,
    `scenario_id` LowCardinality(String),
    `environment` LowCardinality(String),
    `owner` LowCardinality(String),
    `tasks` Int64,
    `total_cost` Decimal(38, 18),
    `p50` Decimal(38, 18),
    `p90` Decimal(38, 18),
    `p95` Decimal(38, 18),
    `p99` Decimal(38, 18),
    `max_bin_mean` Decimal(38, 18),
    `p95_p50_ratio` Nullable(Float64),
    `top5pct_cost` Decimal(38, 18),
    `top5pct_share` Nullable(Float64),
    `top1pct_cost` Decimal(38, 18),
    `top1pct_share` Nullable(Float64)
)
COMMENT 'Tail of cost per task per day, scenario, environment and owner: p50/p90/p95/p99 (mean of the 1% bin holding the nearest-rank task, within 1% of exact), the costliest bin, p95/p50, and the cost and share of spend of the costliest 5% and 1% of tasks'
AS WITH
    (bins, n, pct) -> (bins[arrayFirstIndex(c -> (c >= intDiv((n * pct) + 99, 100)), arrayCumSum(arrayMap(b -> (b.2), bins)))]) AS bin_at,
    (bin -> ((bin.3) / (bin.2))) AS bin_mean,
    ((bins, n, pct) -> arraySum(arrayMap((b, before) -> if(before >= intDiv((n * pct) + 99, 100), toDecimal128(0, 18), if((before + (b.2)) <= intDiv((n * pct) + 99, 100), b.3, ((b.3) * (intDiv((n * pct) + 99, 100) - before)) / (b.2))), arrayReverse(bins), arrayMap((c, b) -> (c - (b.2)), arrayCumSum(arrayMap(b -> (b.2), arrayReverse(bins))), arrayReverse(bins))))) AS top_cost
SELECT
    day,
    scenario_id,
    environment,
    owner,
    n AS tasks,
    cost AS total_cost,
    bin_mean(bin_at(bins, n, 50)) AS p50,
    bin_mean(bin_at(bins, n, 90)) AS p90,
    bin_mean(bin_at(bins, n, 95)) AS p95,
    bin_mean(bin_at(bins, n, 99)) AS p99,
    bin_mean(bins[length(bins)]) AS max_bin_mean,
    if(p50 = 0, NULL, toFloat64(p95) / toFloat64(p50)) AS p95_p50_ratio,
    top_cost(bins, n, 5) AS top5pct_cost,
    if(cost = 0, NULL, toFloat64(top5pct_cost) / toFloat64(cost)) AS top5pct_share,
    top_cost(bins, n, 1) AS top1pct_cost,
    if(cost = 0, NULL, toFloat64(top1pct_cost) / toFloat64(cost)) AS top1pct_share
FROM
(
    SELECT
        day,
        scenario_id,
        environment,
        owner,
        arraySort(b -> (b.1), groupArray((cost_bin, n_bin, cost_in_bin))) AS bins,
        sum(n_bin) AS n,
        sum(cost_in_bin) AS cost
    FROM
    (
        SELECT
            day,
            scenario_id,
            environment,
            owner,
            cost_bin,
            sum(tasks) AS n_bin,
            sum(total_cost) AS cost_in_bin
        FROM task_cost_histogram_daily
        GROUP BY
            day,
            scenario_id,
            environment,
            owner,
            cost_bin
        HAVING n_bin != 0
    )
    GROUP BY
        day,
        scenario_id,
        environment,
        owner
);

CREATE VIEW v_task_costs
(
    `task_id` String,
    `day` Date,
    `scenario_id` LowCardinality(String),
    `environment` LowCardinality(String),
    `owner` LowCardinality(String),
    `outcome` LowCardinality(String),
    `total_cost` Decimal(38, 18),
    `calls` UInt32,
    `failed_calls` UInt32,
    `retried_calls` UInt32,
    `fallback_calls` UInt32,
    `unpriced_calls` UInt32,
    `first_event_at` DateTime64(3, 'UTC'),
    `last_event_at` DateTime64(3, 'UTC')
)
COMMENT 'Every task with its cost and call counts, as of its latest stored state (UTC day of first event); filter and sort it, e.g. ORDER BY total_cost DESC LIMIT 50; their calls: v_task_call_chain'
AS SELECT
    t.task_id AS task_id,
    toDate(t.first_event_at) AS day,
    t.scenario_id AS scenario_id,
    t.environment AS environment,
    t.owner AS owner,
    t.outcome AS outcome,
    t.total_cost AS total_cost,
    t.calls AS calls,
    t.failed_calls AS failed_calls,
    t.retried_calls AS retried_calls,
    t.fallback_calls AS fallback_calls,
    t.unpriced_calls AS unpriced_calls,
    t.first_event_at AS first_event_at,
    t.last_event_at AS last_event_at
FROM tasks AS t
FINAL;

CREATE VIEW v_token_economics_daily
(
    `day` Date,
    `scenario_id` LowCardinality(String),
    `environment` LowCardinality(String),
    `owner` LowCardinality(String),
    `provider` LowCardinality(String),
    `model` LowCardinality(String),
    `calls` Int64,
    `input_tokens` Int64,
    `cache_read_tokens` Int64,
    `cache_write_tokens` Int64,
    `output_tokens` Int64,
    `reasoning_tokens` Int64,
    `prompt_tokens` Int64,
    `avg_prompt_tokens` Float64,
    `avg_completion_tokens` Float64,
    `reasoning_share` Nullable(Float64),
    `calls_with_cap` Int64,
    `capped_calls` Int64,
    `cap_hit_rate` Nullable(Float64),
    `output_to_cap_ratio` Nullable(Float64)
)
COMMENT 'Token mix per day and model: input/cache/output/reasoning, average prompt size, and how often calls end by hitting their output cap'
AS SELECT
    toDate(hour) AS day,
    scenario_id,
    environment,
    owner,
    provider,
    model,
    sum(calls) AS calls,
    sum(input_tokens) AS input_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(output_tokens) AS output_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    (input_tokens + cache_read_tokens) + cache_write_tokens AS prompt_tokens,
    prompt_tokens / calls AS avg_prompt_tokens,
    (output_tokens + reasoning_tokens) / calls AS avg_completion_tokens,
    if(((prompt_tokens + output_tokens) + reasoning_tokens) = 0, NULL, reasoning_tokens / ((prompt_tokens + output_tokens) + reasoning_tokens)) AS reasoning_share,
    sum(calls_with_cap) AS calls_with_cap,
    sum(capped_calls) AS capped_calls,
    if(calls_with_cap = 0, NULL, capped_calls / calls_with_cap) AS cap_hit_rate,
    if(sum(cap_tokens) = 0, NULL, sum(capped_output_tokens) / sum(cap_tokens)) AS output_to_cap_ratio
FROM call_costs_hourly
GROUP BY
    day,
    scenario_id,
    environment,
    owner,
    provider,
    model
HAVING calls != 0;
