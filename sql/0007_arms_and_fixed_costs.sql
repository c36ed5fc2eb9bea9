-- Decision template and full scenario cost.
--
-- Task rows now carry the models their calls used and the task's experiment
-- label (attributes.experiment), so cost per accepted outcome can be read per
-- model and per experiment arm. A task that used several models counts once
-- under each of them ("tasks that used model M"), with its whole cost: the
-- cost of getting an accepted outcome with M in the chain. Tasks stored before
-- this migration have no models and no label until stage 1 restates them.
--
-- Fixed costs (staging, eval capacity, reserve, GPU hours, engineering time)
-- are declared in YAML and loaded by `costflow fixed-costs load`; each load
-- replaces the previous one as a whole and is kept for audit. Allocation is a
-- view, so late usage moves the shares with it. An item accrues evenly over
-- the days of its period, up to today (a month-to-date report carries
-- month-to-date fixed cost); each day's part goes to scenarios by the item's rule. A day with no
-- usage among the item's scenarios leaves its part unallocated, and
-- v_fixed_cost_items says so: allocated + unallocated = declared, always.

ALTER TABLE task_changes ADD COLUMN IF NOT EXISTS models Array(LowCardinality(String)) COMMENT 'Distinct models of the task''s calls as the gateway reported them, sorted' AFTER reprice_priced_calls;
ALTER TABLE task_changes ADD COLUMN IF NOT EXISTS experiment LowCardinality(String) DEFAULT '' COMMENT 'attributes.experiment: the latest task event that sets it, else the earliest call; empty when none' AFTER models;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS models Array(LowCardinality(String)) COMMENT 'Distinct models of the task''s calls as the gateway reported them, sorted' AFTER reprice_priced_calls;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS experiment LowCardinality(String) DEFAULT '' COMMENT 'attributes.experiment: the latest task event that sets it, else the earliest call; empty when none' AFTER models;

-- Recreated to carry the new columns (run migrations with the sink stopped).
DROP VIEW IF EXISTS task_changes_to_tasks;

CREATE MATERIALIZED VIEW IF NOT EXISTS task_changes_to_tasks TO tasks
AS SELECT
    task_id, version, scenario_id, environment, owner, first_event_at, last_event_at,
    started_at, completed_at, calls, failed_calls, retried_calls, fallback_calls,
    unpriced_calls, total_cost, input_tokens, cache_read_tokens, cache_write_tokens,
    output_tokens, reasoning_tokens, outcome, outcome_source, outcome_at, outcome_deadline,
    reprice_cost_delta, reprice_priced_calls, models, experiment, changed_at AS ingested_at
FROM task_changes
WHERE sign = 1;

CREATE TABLE IF NOT EXISTS task_arms_daily
(
    day Date COMMENT 'UTC date of the task''s first event',
    scenario_id LowCardinality(String),
    environment LowCardinality(String),
    owner LowCardinality(String),
    dimension LowCardinality(String) COMMENT 'model: tasks that used the model; experiment: tasks labelled with the arm',
    arm LowCardinality(String) COMMENT 'The model, or the experiment label',
    outcome LowCardinality(String) COMMENT 'accepted | rejected | failed, or empty while none has arrived',
    open_deadline DateTime64(3, 'UTC') COMMENT 'Outcome deadline of tasks without an outcome; 1970-01-01 for tasks with one',
    tasks Int64 COMMENT 'Number of tasks (sum of signs)',
    calls Int64 COMMENT 'All calls of those tasks, every model',
    total_cost Decimal(38, 18) COMMENT 'Whole cost of those tasks, every model'
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (day, scenario_id, environment, owner, dimension, arm, outcome, open_deadline)
SETTINGS non_replicated_deduplication_window = 10000
COMMENT 'Tasks and their whole cost per day, scenario, environment, owner, outcome and arm (model used, or experiment label); always read with sum()';

-- One row per arm of each task change: each model it used, and its label if any.
CREATE MATERIALIZED VIEW IF NOT EXISTS task_arms_daily_mv TO task_arms_daily
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
ARRAY JOIN arrayConcat(
    arrayMap(m -> ('model', toString(m)), t.models),
    if(t.experiment = '', [], [('experiment', toString(t.experiment))])) AS a
GROUP BY day, scenario_id, environment, owner, dimension, arm, outcome, open_deadline;

CREATE VIEW IF NOT EXISTS v_arm_outcomes_daily
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
    cost - cost_accepted - cost_pending AS waste_cost,
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
        sumIf(tasks, outcome = '' AND open_deadline <= now64(3)) AS n_unresolved,
        sumIf(tasks, outcome = '' AND open_deadline > now64(3)) AS n_pending,
        sum(calls) AS n_calls,
        sum(total_cost) AS cost,
        sumIf(total_cost, outcome = 'accepted') AS cost_accepted,
        sumIf(total_cost, outcome = '' AND open_deadline > now64(3)) AS cost_pending
    FROM task_arms_daily
    GROUP BY day, scenario_id, environment, owner, dimension, arm
    HAVING n_tasks != 0
)
COMMENT 'Per day, scenario, environment, owner and arm (dimension model: tasks that used the model, whole task cost; dimension experiment: tasks labelled attributes.experiment): tasks by outcome, cost, waste, cost per accepted outcome, acceptance rate; final = no task still inside its outcome window';

CREATE VIEW IF NOT EXISTS v_model_decision_daily
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
    SELECT day, scenario_id, environment, owner, arm AS model, tasks, accepted,
        acceptance_rate, total_cost, cost_per_accepted_outcome, final, 1 AS matched
    FROM v_arm_outcomes_daily
    WHERE dimension = 'model'
) AS a
USING (day, scenario_id, environment, owner, model)
COMMENT 'The decision template per day, scenario and model: call-level figures (call labels) beside task-level ones (tasks that used the model, task labels): accepted-outcome rate and cost per accepted outcome of the whole task';

CREATE TABLE IF NOT EXISTS fixed_costs
(
    loaded_at DateTime64(3, 'UTC') COMMENT 'When costflow fixed-costs load wrote this declaration; the latest load is current',
    source String COMMENT 'The declaration file and its SHA-256',
    item String COMMENT 'Name of the cost item, unique in a load',
    category LowCardinality(String) COMMENT 'staging | test | eval | reserve | gpu | engineering | other',
    period_start Date COMMENT 'First day the cost covers (UTC)',
    period_end Date COMMENT 'Day after the last day the cost covers (exclusive)',
    amount Decimal(38, 18) COMMENT 'The cost over the whole period, in currency',
    currency LowCardinality(String) COMMENT 'ISO 4217; the billing currency of the priced calls',
    rule LowCardinality(String) COMMENT 'usage_share: each day''s part by that day''s variable cost of each scenario; weights: by fixed weights',
    scenarios Array(String) COMMENT 'usage_share: the scenarios that share it (empty: every scenario with usage)',
    weights Map(String, Decimal(38, 18)) COMMENT 'weights: scenario -> weight',
    note String
)
ENGINE = MergeTree
ORDER BY (loaded_at, item)
SETTINGS non_replicated_deduplication_window = 10000
COMMENT 'Declared fixed costs, one full set per load (see v_fixed_costs for the current one)';

CREATE VIEW IF NOT EXISTS v_fixed_costs
AS SELECT item, category, period_start, period_end, amount, currency, rule, scenarios, weights,
    note, loaded_at, source
FROM fixed_costs
WHERE loaded_at = (SELECT max(loaded_at) FROM fixed_costs)
COMMENT 'The fixed costs of the latest load';

-- Money is multiplied in Decimal256 (a Decimal128 product or quotient of two
-- costs overflows without an error), then truncated to 18 places.
CREATE VIEW IF NOT EXISTS v_fixed_cost_allocation_daily
AS SELECT
    u.day AS day,
    u.scenario_id AS scenario_id,
    f.item AS item,
    f.category AS category,
    f.rule AS rule,
    toDecimal128(
        toDecimal256(f.amount, 18) * toDecimal256(u.cost, 18)
            / (sum(toDecimal256(u.cost, 18)) OVER (PARTITION BY f.item, u.day)
                * toUInt32(dateDiff('day', f.period_start, f.period_end))),
        18) AS allocated_cost
FROM v_fixed_costs AS f
CROSS JOIN
(
    SELECT day, scenario_id, sum(total_cost) AS cost
    FROM task_outcomes_daily
    GROUP BY day, scenario_id
    HAVING cost > 0
) AS u
WHERE f.rule = 'usage_share'
    AND u.day >= f.period_start AND u.day < f.period_end
    AND (empty(f.scenarios) OR has(f.scenarios, u.scenario_id))
UNION ALL
SELECT
    d AS day,
    s AS scenario_id,
    w.item AS item,
    w.category AS category,
    w.rule AS rule,
    toDecimal128(
        toDecimal256(w.amount, 18) * toDecimal256(wt, 18)
            / (toDecimal256(w.weight_sum, 18) * w.days),
        18) AS allocated_cost
FROM
(
    SELECT item, category, rule, amount, period_start, weights,
        arraySum(mapValues(weights)) AS weight_sum,
        toUInt32(dateDiff('day', period_start, period_end)) AS days
    FROM v_fixed_costs
    WHERE rule = 'weights'
) AS w
ARRAY JOIN mapKeys(w.weights) AS s, mapValues(w.weights) AS wt
ARRAY JOIN arrayMap(i -> w.period_start + i, range(w.days)) AS d
WHERE d <= toDate(now(), 'UTC')
COMMENT 'Each current fixed cost item accrued evenly over the days of its period up to today (UTC), each day''s part shared among scenarios by the rule: usage_share by that day''s variable cost (task day), weights by fixed weights';

CREATE VIEW IF NOT EXISTS v_fixed_cost_items
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
    SELECT item, sum(allocated_cost) AS allocated
    FROM v_fixed_cost_allocation_daily
    GROUP BY item
) AS a
USING (item)
COMMENT 'Current fixed cost items: declared, allocated so far, and unallocated (days of the period without usage, or still to come; truncation leaves at most 1e-18 per allocated row)';

CREATE VIEW IF NOT EXISTS v_scenario_full_cost_daily
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
    SELECT o.day AS day, o.scenario_id AS scenario_id,
        sum(o.tasks) AS tasks,
        sumIf(o.tasks, o.outcome = 'accepted') AS accepted,
        sumIf(o.tasks, o.outcome = '' AND o.open_deadline > now64(3)) AS pending,
        sum(o.total_cost) AS variable_cost
    FROM task_outcomes_daily AS o
    GROUP BY day, scenario_id
    HAVING tasks != 0
) AS v
FULL OUTER JOIN
(
    SELECT day, scenario_id, sum(allocated_cost) AS fixed_cost
    FROM v_fixed_cost_allocation_daily
    GROUP BY day, scenario_id
) AS a
USING (day, scenario_id)
COMMENT 'Per day and scenario: variable cost (calls), allocated fixed cost, full cost, and cost per accepted outcome without and with fixed costs';


-- 0006 wrote USD here whatever the price book's currency; calls record it.
-- Recreated (run migrations with the sink stopped; BI reads fail in between).
DROP VIEW IF EXISTS v_focus_costs;

CREATE VIEW IF NOT EXISTS v_focus_costs
AS SELECT
    sum(cost_total) AS BilledCost,
    sum(cost_total) AS EffectiveCost,
    sum(cost_total) AS ListCost,
    sum(cost_total) AS ContractedCost,
    ifNull((SELECT any(currency) FROM (SELECT currency FROM calls WHERE currency != '' LIMIT 1)), '') AS BillingCurrency,
    hour AS ChargePeriodStart,
    hour + INTERVAL 1 HOUR AS ChargePeriodEnd,
    hour AS BillingPeriodStart,
    hour + INTERVAL 1 HOUR AS BillingPeriodEnd,
    'Usage' AS ChargeCategory,
    'Usage-Based' AS PricingCategory,
    provider AS ProviderName,
    provider AS PublisherName,
    provider AS InvoiceIssuerName,
    'AI and Machine Learning' AS ServiceCategory,
    concat(provider, ' ', model) AS ServiceName,
    model AS ResourceId,
    concat(model, ':', service_tier) AS SkuId,
    sum(input_tokens + cache_read_tokens + cache_write_tokens + output_tokens + reasoning_tokens) AS ConsumedQuantity,
    'Tokens' AS ConsumedUnit,
    sum(calls) AS x_Calls,
    map('scenario_id', scenario_id, 'environment', environment, 'owner', owner, 'role', role) AS Tags
FROM call_costs_hourly
GROUP BY hour, provider, model, service_tier, scenario_id, environment, owner, role
HAVING x_Calls != 0
COMMENT 'FinOps FOCUS-shaped usage rows per hour, model and tag set, for FinOps tools; costs are as billed, in the price book''s currency (ListCost equals BilledCost: negotiated overlays are not split out)';
