-- Restatement with sign rows, so incremental aggregates are exact at every moment.
--
-- When a newer snapshot of a task arrives, the sink reads the task's current row
-- and inserts two rows into task_changes in one block: the stored row with
-- sign = -1 (it cancels) and the new row with sign = +1. Materialized views
-- over task_changes sum sign * x, so an aggregate never depends on whether a
-- background merge has run. The tasks table is now fed from the +1 rows.
-- Deadlines: see OutcomeWindow (pipeline/join/state.py); whole hours.

ALTER TABLE tasks ADD COLUMN IF NOT EXISTS outcome_deadline DateTime64(3, 'UTC') DEFAULT toStartOfHour(last_event_at + INTERVAL 1 DAY) + INTERVAL 1 HOUR COMMENT 'First whole hour after last event + outcome window; no outcome by then = unresolved' AFTER outcome_at;

CREATE TABLE IF NOT EXISTS task_changes
(
    task_id String,
    version UInt64 COMMENT 'Number of distinct events in the snapshot this row carries',
    sign Int8 COMMENT '+1: the task as of this version; -1: cancels the +1 row of this version',
    scenario_id LowCardinality(String),
    environment LowCardinality(String),
    owner LowCardinality(String),
    first_event_at DateTime64(3, 'UTC'),
    last_event_at DateTime64(3, 'UTC'),
    started_at Nullable(DateTime64(3, 'UTC')),
    completed_at Nullable(DateTime64(3, 'UTC')),
    calls UInt32,
    failed_calls UInt32,
    retried_calls UInt32,
    fallback_calls UInt32,
    unpriced_calls UInt32,
    total_cost Decimal(38, 18),
    input_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    output_tokens UInt64,
    reasoning_tokens UInt64,
    outcome LowCardinality(String),
    outcome_source LowCardinality(String),
    outcome_at Nullable(DateTime64(3, 'UTC')),
    outcome_deadline DateTime64(3, 'UTC'),
    changed_at DateTime64(3, 'UTC') DEFAULT now64(3),
    plan_id String COMMENT 'The sink batch that wrote this row (see sink_plans)',
    INDEX plan_idx plan_id TYPE bloom_filter GRANULARITY 4
)
ENGINE = VersionedCollapsingMergeTree(sign, version)
ORDER BY task_id
SETTINGS non_replicated_deduplication_window = 10000
COMMENT 'Change log of the task fact table: sign -1 cancels a stored version, +1 adds the new one';

ALTER TABLE calls ADD COLUMN IF NOT EXISTS plan_id String DEFAULT '' COMMENT 'The sink batch that wrote this row (see sink_plans)';

ALTER TABLE calls ADD INDEX IF NOT EXISTS plan_idx plan_id TYPE bloom_filter GRANULARITY 4;

-- A server that dies in the middle of one INSERT can keep the source table's
-- block and lose a materialized view's. ClickHouse completes such an insert when
-- the same block is sent again with the same deduplication token, so the sink
-- records each batch here before and after writing it, and on start re-sends the
-- rows of any batch that never finished.
CREATE TABLE IF NOT EXISTS sink_plans
(
    plan_id String,
    tables Array(String) COMMENT 'Tables the batch writes, each with token plan_id:table',
    state Enum8('started' = 1, 'done' = 2),
    at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (plan_id, state)
TTL toDateTime(at) + INTERVAL 7 DAY
SETTINGS non_replicated_deduplication_window = 10000
COMMENT 'Write-ahead record of sink batches, for completing interrupted inserts';

CREATE MATERIALIZED VIEW IF NOT EXISTS task_changes_to_tasks TO tasks
AS SELECT
    task_id, version, scenario_id, environment, owner, first_event_at, last_event_at,
    started_at, completed_at, calls, failed_calls, retried_calls, fallback_calls,
    unpriced_calls, total_cost, input_tokens, cache_read_tokens, cache_write_tokens,
    output_tokens, reasoning_tokens, outcome, outcome_source, outcome_at, outcome_deadline,
    changed_at AS ingested_at
FROM task_changes
WHERE sign = 1;

CREATE TABLE IF NOT EXISTS task_outcomes_daily
(
    day Date COMMENT 'UTC date of the task''s first event',
    scenario_id LowCardinality(String),
    environment LowCardinality(String),
    owner LowCardinality(String),
    outcome LowCardinality(String) COMMENT 'accepted | rejected | failed, or empty while none has arrived',
    open_deadline DateTime64(3, 'UTC') COMMENT 'Outcome deadline of tasks without an outcome; 1970-01-01 for tasks with one',
    tasks Int64 COMMENT 'Number of tasks (sum of signs)',
    calls Int64,
    failed_calls Int64,
    retried_calls Int64,
    fallback_calls Int64,
    unpriced_calls Int64,
    total_cost Decimal(38, 18)
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (day, scenario_id, environment, owner, outcome, open_deadline)
SETTINGS non_replicated_deduplication_window = 10000
COMMENT 'Tasks and their cost per day, scenario, environment, owner and outcome; always read with sum()';

CREATE MATERIALIZED VIEW IF NOT EXISTS task_outcomes_daily_mv TO task_outcomes_daily
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
GROUP BY day, scenario_id, environment, owner, outcome, open_deadline;

-- Installations that ran the skeleton have task rows but no aggregates yet.
INSERT INTO task_outcomes_daily
SELECT
    toDate(first_event_at),
    scenario_id,
    environment,
    owner,
    outcome,
    if(outcome = '', outcome_deadline, toDateTime64(0, 3, 'UTC')),
    count(),
    sum(toInt64(calls)),
    sum(toInt64(failed_calls)),
    sum(toInt64(retried_calls)),
    sum(toInt64(fallback_calls)),
    sum(toInt64(unpriced_calls)),
    sum(total_cost)
FROM tasks FINAL
WHERE (SELECT count() FROM task_outcomes_daily) = 0
GROUP BY 1, 2, 3, 4, 5, 6;

DROP VIEW IF EXISTS v_cost_per_outcome;

CREATE VIEW IF NOT EXISTS v_cost_per_outcome
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
        sumIf(tasks, outcome = '' AND open_deadline <= now64(3)) AS n_unresolved,
        sumIf(tasks, outcome = '' AND open_deadline > now64(3)) AS n_pending,
        sum(total_cost) AS cost,
        sumIf(total_cost, outcome = 'accepted') AS cost_accepted
    FROM task_outcomes_daily
    GROUP BY day, scenario_id, environment
    HAVING n_tasks != 0
)
COMMENT 'Cost per accepted outcome per day, scenario and environment; final = no task still inside its outcome window';
