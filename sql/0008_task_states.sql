-- What the sink knows of each task's stage-1 state, beside the task row.
--
-- Stage 1 sends its full state with every snapshot (event ids and every field).
-- The sink keeps it here, so that it can tell which events a stored row reflects:
-- a snapshot with every event already stored is skipped with nothing lost; a
-- snapshot that lacks stored events and carries new ones is not applied and its
-- new events are kept in `pending` (visible in `costflow report`), never dropped
-- silently. When a task's state leaves stage 1 (retention) and the task starts
-- again, the old state becomes `base` and the row is base merged with the new
-- start's state, exactly (their event sets are disjoint: see agents.base).
-- `costflow state restore` rebuilds stage 1's table from here.

CREATE TABLE IF NOT EXISTS task_states
(
    task_id String,
    seq UInt64 COMMENT 'Increases with every change the sink writes for the task',
    base String CODEC(ZSTD(3)) COMMENT 'Merged state of earlier starts that left stage 1 (JSON; empty: none)',
    current String CODEC(ZSTD(3)) COMMENT 'Latest state stage 1 reported for the current start (JSON; empty: none)',
    pending Array(String) COMMENT 'Event ids stage 1 applied that the row lacks (a diverged snapshot); empty when whole',
    events UInt32 COMMENT 'Distinct events the task row reflects (base and current)',
    evictions UInt32 COMMENT 'How often the task state left stage 1 and was kept as base',
    written_at DateTime64(3, 'UTC') DEFAULT now64(3),
    plan_id String COMMENT 'The sink batch that wrote this row (see sink_plans)',
    INDEX plan_idx plan_id TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree(seq)
ORDER BY task_id
SETTINGS non_replicated_deduplication_window = 10000
COMMENT 'Stage-1 state per task as the sink applied it: event ids, base of earlier starts, pending events';
