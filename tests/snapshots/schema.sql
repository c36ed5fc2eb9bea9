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
    `input_tokens` UInt64,
    `cache_read_tokens` UInt64,
    `cache_write_tokens` UInt64,
    `cache_write_1h_tokens` UInt64 DEFAULT 0,
    `output_tokens` UInt64,
    `reasoning_tokens` UInt64,
    `units` Map(LowCardinality(String), Decimal(38, 9)) COMMENT 'Non-token usage by unit: query, evaluation, tool_call, gpu_second, ...',
    `cost_input` Nullable(Decimal(38, 18)),
    `cost_cache_read` Nullable(Decimal(38, 18)),
    `cost_cache_write` Nullable(Decimal(38, 18)),
    `cost_output` Nullable(Decimal(38, 18)),
    `cost_reasoning` Nullable(Decimal(38, 18)),
    `cost_request` Nullable(Decimal(38, 18)),
    `cost_units` Nullable(Decimal(38, 18)) COMMENT 'Cost of the non-token units',
    `cost_total` Nullable(Decimal(38, 18)) COMMENT 'NULL when the call could not be priced; see pricing_error',
    `currency` LowCardinality(String),
    `list_currency` LowCardinality(String) DEFAULT '' COMMENT 'Currency of the price entry; costs are converted to currency',
    `fx_rate` Nullable(Decimal(38, 18)) COMMENT 'list_currency -> currency rate used; NULL when no conversion',
    `price_book_version` LowCardinality(String) COMMENT 'name@version of the price book that priced this row',
    `price_overlay` LowCardinality(String) DEFAULT '' COMMENT 'Negotiated-price overlay that applied; empty for list prices',
    `pricing_error` String COMMENT 'Why cost is NULL; empty when priced',
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
    changed_at AS ingested_at
FROM task_changes
WHERE sign = 1;

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
    `ingested_at` DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY task_id
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 8192
COMMENT 'One row per task (latest version wins): its calls joined, priced and summed';

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
    `final` UInt8
)
COMMENT 'Cost per accepted outcome per day, scenario and environment; final = no task still inside its outcome window'
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
    n_pending = 0 AS final
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
        sumIf(total_cost, outcome = 'accepted') AS cost_accepted
    FROM task_outcomes_daily
    GROUP BY
        day,
        scenario_id,
        environment
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
    sum(ifNull(old_cost_total, toDecimal128(0, 18))) AS old_cost,
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
