-- Alert history records pending instances too (issue 16): an evaluator restarted
-- between cycles (`costflow alerts run --once` from cron) rebuilds a pending instance
-- from its `pending` event and fires it once it has held for the rule's `for`.
-- `inactive` closes a pending instance whose condition cleared before it fired.
-- Receivers are told only of `firing` and `resolved`; BI reading alert_events for
-- notifications filters on those two.

ALTER TABLE alert_events
    COMMENT COLUMN state 'pending | inactive | firing | resolved (only firing and resolved are notified)';

ALTER TABLE alert_events
    COMMENT COLUMN starts_at 'When the instance started firing (pending, inactive: when it became active)';

ALTER TABLE alert_events
    COMMENT COLUMN ends_at 'When it resolved (resolved), or when a pending instance went inactive';

ALTER TABLE alert_events
    MODIFY COMMENT 'Alert state transitions (pending, inactive, firing, resolved); the evaluator''s state is rebuilt from it';
