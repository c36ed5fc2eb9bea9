-- A firing alert whose condition clears is kept firing for the rule's keep_firing_for,
-- counted from the first evaluation that found it cleared. That start is now recorded
-- (`cleared`), and `recurred` when the condition returns before the alert resolved, so
-- an evaluator restarted in between resolves it on time instead of counting afresh.
-- Neither is notified; an alert is firing from its `firing` event until `resolved`.

ALTER TABLE alert_events
    COMMENT COLUMN state 'pending | inactive | firing | cleared | recurred | resolved (only firing and resolved are notified)';
