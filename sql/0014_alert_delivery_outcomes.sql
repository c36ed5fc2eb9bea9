-- Receivers costflow notifies itself (webhook, Slack, Kafka) group, repeat and
-- silence as Alertmanager would (issue 16). Each row now says what happened to the
-- event for that receiver: `sent` (acknowledged by it; repeats of a firing alert are
-- rows at the cycle's time), `silenced` (a silence in the rule file muted it) or
-- `skipped` (a resolution of an alert the receiver was never told of). Rows written
-- before this migration were all sent.

ALTER TABLE alert_deliveries
    ADD COLUMN IF NOT EXISTS outcome LowCardinality(String) DEFAULT 'sent'
    COMMENT 'sent | silenced | skipped';
