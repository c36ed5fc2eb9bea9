-- Cost per accepted outcome by day (UTC date of the task's first event),
-- scenario and environment. Numerator: every call of every task, failed and
-- retried work included. Decimal division truncates at 18 fractional digits.

CREATE VIEW IF NOT EXISTS v_cost_per_outcome
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
    FROM tasks AS t FINAL
    GROUP BY day, scenario_id, environment
)
COMMENT 'Cost per accepted outcome per day, scenario and environment';
