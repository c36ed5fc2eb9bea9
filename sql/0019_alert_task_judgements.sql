-- Anomaly rules of task metrics (cost_per_task, cost_per_accepted_outcome,
-- waste_share) judge an hour once its tasks are decided: the last whole hour ending
-- the rule's decision_lag (default 1d, the default outcome window) before the
-- evaluation. Their judgements keep a digest of the hour's task figures instead of its
-- calls' (tasks by the hour of their first event, every label set together, decided
-- as of judged_at), so a late outcome, a deadline passing, a late call or a reprice of
-- the hour's tasks judges it again (see 0016). The call digests of every other rule
-- are unchanged. Documentation only: the column keeps its type.

ALTER TABLE alert_judgements
    COMMENT COLUMN digest 'Read before judging. Call windows: calls:unpriced:retried:tokens:known cost of every stored call in the window. Anomaly rules of task metrics: tasks:calls:unpriced:cost/decided tasks:calls:unpriced:cost/accepted:waste cost of the tasks first seen in the hour, decided as of judged_at';

ALTER TABLE alert_judgements
    COMMENT COLUMN window_start 'Start of the judged window (an anomaly rule''s hour, a budget''s period); a task metric''s hour is judged decision_lag after it closed';
