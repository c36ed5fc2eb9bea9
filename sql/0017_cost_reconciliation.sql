-- Reconciliation: what a source says a call cost (LiteLLM's response_cost, OpenRouter's
-- usage.cost, a gateway's billed amount, kept as attributes['provider_reported_cost'],
-- USD) against what costflow computed from its price book. A steady difference for a
-- model is the early warning that the book has drifted from what providers bill.
-- A call differs when |computed - reported| exceeds 1% of the reported cost and
-- 0.000001 USD (below that, rounding in the source's float). Only USD rows compare;
-- unpriced calls (computed NULL) are listed: the source prices what the book does not;
-- a reported cost that is not a number is listed as unreadable, never taken as agreeing.

CREATE VIEW IF NOT EXISTS v_cost_reconciliation_calls
AS SELECT
    event_id,
    task_id,
    ts,
    provider,
    model,
    service_tier,
    status,
    currency,
    price_book_version,
    cost_total AS computed_cost,
    toDecimal128OrNull(attributes['provider_reported_cost'], 18) AS reported_cost,
    computed_cost - reported_cost AS difference,
    if(reported_cost = 0, NULL, toFloat64(difference) / toFloat64(reported_cost)) AS relative_difference,
    multiIf(
        reported_cost IS NULL, 'unreadable_report',
        computed_cost IS NULL, 'unpriced',
        currency != 'USD', 'not_comparable_currency',
        abs(difference) > greatest(reported_cost * toDecimal128('0.01', 18), toDecimal128('0.000001', 18)), 'differs',
        'agrees'
    ) AS verdict
FROM calls FINAL
WHERE attributes['provider_reported_cost'] != ''
COMMENT 'Every call with a cost its source reported, beside the computed cost; verdict agrees | differs | unpriced | not_comparable_currency | unreadable_report';

CREATE VIEW IF NOT EXISTS v_cost_reconciliation_daily
AS SELECT
    toDate(ts) AS day,
    provider,
    model,
    count() AS calls_reported,
    countIf(verdict = 'differs') AS calls_differing,
    countIf(verdict = 'unpriced') AS calls_unpriced,
    countIf(verdict IN ('not_comparable_currency', 'unreadable_report')) AS calls_not_comparable,
    sumIf(reported_cost, verdict IN ('agrees', 'differs')) AS reported_cost,
    sumIf(computed_cost, verdict IN ('agrees', 'differs')) AS computed_cost,
    computed_cost - reported_cost AS difference
FROM v_cost_reconciliation_calls
GROUP BY day, provider, model
COMMENT 'Reported against computed cost (USD) per day, provider and model, over the calls that compare; calls differing beyond tolerance counted, unpriced and other-currency calls counted apart';
