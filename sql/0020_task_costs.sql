-- One row per task, for dashboards that filter and sort tasks themselves. The
-- v_costliest_tasks view keeps the 100 costliest of every day (LIMIT BY), which sorts
-- every task before any filter applies: 1.8-7 s at 10M tasks for a top-50 panel,
-- against 0.3 s for the same top 50 read from here.

CREATE VIEW IF NOT EXISTS v_task_costs
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
FROM tasks AS t FINAL
COMMENT 'Every task with its cost and call counts, as of its latest stored state (UTC day of first event); filter and sort it, e.g. ORDER BY total_cost DESC LIMIT 50; their calls: v_task_call_chain';
