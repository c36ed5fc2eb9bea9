CREATE TABLE calls
(
    `event_id` String COMMENT 'Idempotency key of the call event',
    `task_id` String COMMENT 'Task this call belongs to',
    `ts` DateTime64(3, 'UTC') COMMENT 'Event time of the call',
    `provider` LowCardinality(String),
    `model` LowCardinality(String),
    `scenario_id` LowCardinality(String) COMMENT 'Scenario as the call reported it (tasks.scenario_id is authoritative)',
    `environment` LowCardinality(String),
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
    `cost_input` Nullable(Decimal(38, 18)),
    `cost_cache_read` Nullable(Decimal(38, 18)),
    `cost_cache_write` Nullable(Decimal(38, 18)),
    `cost_output` Nullable(Decimal(38, 18)),
    `cost_reasoning` Nullable(Decimal(38, 18)),
    `cost_request` Nullable(Decimal(38, 18)),
    `cost_total` Nullable(Decimal(38, 18)) COMMENT 'NULL when the call could not be priced; see pricing_error',
    `currency` LowCardinality(String),
    `price_book_version` LowCardinality(String) COMMENT 'name@version of the price book that priced this row',
    `pricing_error` String COMMENT 'Why cost is NULL; empty when priced',
    `attributes` Map(String, String),
    `ingested_at` DateTime64(3, 'UTC') DEFAULT now64(3)
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

CREATE TABLE tasks
(
    `task_id` String,
    `version` UInt64 COMMENT 'Number of distinct events applied; the highest version is the full state',
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
    `tasks` UInt64,
    `accepted` UInt64,
    `rejected` UInt64,
    `failed` UInt64,
    `unresolved` UInt64,
    `total_cost` Decimal(38, 18),
    `accepted_cost` Decimal(38, 18),
    `cost_per_task` Decimal(38, 18),
    `cost_per_accepted_outcome` Nullable(Decimal(38, 18))
)
COMMENT 'Cost per accepted outcome per day, scenario and environment'
AS SELECT
    day,
    scenario_id,
    environment,
    tasks,
    accepted,
    rejected,
    failed,
    unresolved,
    total_cost,
    accepted_cost,
    total_cost / tasks AS cost_per_task,
    if(accepted = 0, NULL, total_cost / accepted) AS cost_per_accepted_outcome
FROM
(
    SELECT
        toDate(first_event_at) AS day,
        scenario_id,
        environment,
        count() AS tasks,
        countIf(outcome = 'accepted') AS accepted,
        countIf(outcome = 'rejected') AS rejected,
        countIf(outcome = 'failed') AS failed,
        countIf(outcome = '') AS unresolved,
        sum(t.total_cost) AS total_cost,
        sumIf(t.total_cost, outcome = 'accepted') AS accepted_cost
    FROM tasks AS t
    FINAL
    GROUP BY
        day,
        scenario_id,
        environment
);
