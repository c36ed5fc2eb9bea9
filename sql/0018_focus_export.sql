-- FinOps FOCUS 1.2 (and 1.3) rows: one per hour, provider, model, service tier, usage
-- class (SkuMeter), tag set and unit price, for `costflow focus export`.
--
-- A call row stores its cost per column (input, cache read, cache write 5m + 1h
-- together, audio, image, units together) after any negotiated overlay, and not its
-- list cost nor its unit prices. FOCUS needs both, per usage class, with
-- ListUnitPrice x PricingQuantity = ListCost and the same for contracted prices. So
-- unit prices come from the price book that priced the calls: `costflow focus export`
-- resolves the book's rates for every (book version, provider, model, service tier,
-- owner, environment) of the month, with and without the overlay in force, into
-- focus_rates; this view puts each call's quantities of each class beside them. Costs
-- are unit price x quantity per row, which equals the stored cost of the calls to the
-- last of its 18 decimals unless the engine rounded a call's cost (a rate with more
-- than 12 decimals after a multiplier or FX conversion): the export checks the sum
-- against the stored costs. Calls without a full price (cost_total NULL) are not
-- here: there is no price to report.

CREATE TABLE IF NOT EXISTS focus_rates
(
    price_book_version LowCardinality(String) COMMENT 'name@version of the book the rates come from (the calls'' price_book_version)',
    provider LowCardinality(String) COMMENT 'Provider as the calls report it',
    model LowCardinality(String) COMMENT 'Model as the calls report it',
    service_tier LowCardinality(String),
    owner LowCardinality(String) COMMENT 'Owner as the calls report it (overlays match on it); row policies filter on it',
    environment LowCardinality(String) COMMENT 'Environment as the calls report it (overlays match on it)',
    valid_from DateTime64(3, 'UTC') COMMENT 'The rates apply to calls at or after this instant',
    valid_to DateTime64(3, 'UTC') COMMENT '... and before this one: one entry and one overlay in force, clipped to the exported month',
    prompt_above Int64 COMMENT 'Context tier: calls with more prompt tokens than this (-1: from 0)',
    prompt_upto Int64 COMMENT '... and at most this many (9223372036854775807: no upper bound)',
    off_peak UInt8 COMMENT '1: the rates inside the entry''s off-peak windows; 0: outside them',
    off_peak_windows Array(Tuple(UInt8, UInt16, UInt16)) COMMENT 'The entry''s off-peak windows: (ISO weekday, first minute of the day, minute after the last), UTC; empty when none',
    price_overlay LowCardinality(String) COMMENT 'The negotiated overlay in force; empty for list prices',
    meter LowCardinality(String) COMMENT 'Usage class: input, cache_read, cache_write_5m, cache_write_1h, output, reasoning, input_audio, cache_audio_read, output_audio, input_image, output_image, request, unit:<name>',
    pricing_currency LowCardinality(String) COMMENT 'Currency of the entry''s prices (converted to the book''s by the call''s fx_rate)',
    list_unit_price Decimal(38, 18) COMMENT 'List price per pricing unit (1000000 tokens, one request, one unit), before overlays',
    contracted_unit_price Decimal(38, 18) COMMENT 'Price per pricing unit after the negotiated overlay (equal to the list price without one)',
    loaded_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(loaded_at)
ORDER BY (price_book_version, provider, model, service_tier, owner, environment, meter, valid_from, prompt_above, off_peak)
SETTINGS non_replicated_deduplication_window = 10000
COMMENT 'Unit prices of the price books that priced the calls, per usage class, as costflow focus export resolved them (read with FINAL)';

-- The usage classes of a call with their quantities, priced by the rate row in force at
-- its time, prompt size and time of day. A class's quantity is tokens (priced per
-- million), requests (1 per call) or units as reported.
CREATE OR REPLACE VIEW v_focus_costs
AS SELECT
    toDecimal128(roundBankers(toDecimal256(contracted_price, 18) * toDecimal256(pricing_quantity, 9), 18), 18) AS BilledCost,
    BilledCost AS EffectiveCost,
    toDecimal128(roundBankers(toDecimal256(list_price, 18) * toDecimal256(pricing_quantity, 9), 18), 18) AS ListCost,
    BilledCost AS ContractedCost,
    toDecimal128(contracted_price, 18) AS ContractedUnitPrice,
    toDecimal128(list_price, 18) AS ListUnitPrice,
    toString(currency) AS BillingCurrency,
    toString(pricing_currency) AS PricingCurrency,
    toDecimal128(pricing_list_price, 18) AS PricingCurrencyListUnitPrice,
    toDecimal128(pricing_contracted_price, 18) AS PricingCurrencyContractedUnitPrice,
    toDecimal128(roundBankers(toDecimal256(pricing_contracted_price, 18) * toDecimal256(pricing_quantity, 9), 18), 18) AS PricingCurrencyEffectiveCost,
    hour AS ChargePeriodStart,
    hour + INTERVAL 1 HOUR AS ChargePeriodEnd,
    toDateTime(billing_month, 'UTC') AS BillingPeriodStart,
    toDateTime(addMonths(billing_month, 1), 'UTC') AS BillingPeriodEnd,
    toString(provider) AS BillingAccountId,
    toString(provider) AS BillingAccountName,
    'Usage' AS ChargeCategory,
    CAST(NULL, 'Nullable(String)') AS ChargeClass,
    'Usage-Based' AS ChargeFrequency,
    'Standard' AS PricingCategory,
    concat(provider, ' ', model, ' ', lower(meter_name),
        if(service_tier = 'standard', '', concat(' (', service_tier, ' tier)'))) AS ChargeDescription,
    toString(provider) AS ProviderName,
    toString(provider) AS PublisherName,
    toString(provider) AS InvoiceIssuerName,
    toString(provider) AS ServiceProviderName,
    toString(provider) AS HostProviderName,
    'AI and Machine Learning' AS ServiceCategory,
    'Generative AI' AS ServiceSubcategory,
    concat(provider, ' ', model) AS ServiceName,
    concat(provider, '/', model, '/', service_tier, '/', meter) AS SkuId,
    meter_name AS SkuMeter,
    toDecimal128(consumed_quantity, 9) AS ConsumedQuantity,
    multiIf(meter = 'request', 'Requests', startsWith(meter, 'unit:'), substring(meter, 6), 'Tokens') AS ConsumedUnit,
    toDecimal128(pricing_quantity, 9) AS PricingQuantity,
    multiIf(meter = 'request', 'Requests', startsWith(meter, 'unit:'), substring(meter, 6), '1000000 Tokens') AS PricingUnit,
    toJSONString(mapFilter((k, v) -> v != '', map(
        'scenario_id', toString(scenario_id), 'environment', toString(environment),
        'owner', toString(owner), 'role', toString(role)))) AS Tags,
    calls AS x_Calls,
    toString(meter) AS x_UsageClass,
    toString(service_tier) AS x_ServiceTier,
    toString(model) AS x_Model,
    toString(price_book_version) AS x_PriceBookVersion,
    toString(price_overlay) AS x_PriceOverlay
FROM
(
    SELECT
        toStartOfHour(toDateTime(u.ts, 'UTC')) AS hour,
        u.provider AS provider,
        u.model AS model,
        u.service_tier AS service_tier,
        u.scenario_id AS scenario_id,
        u.environment AS environment,
        u.owner AS owner,
        u.role AS role,
        u.currency AS currency,
        u.price_book_version AS price_book_version,
        u.price_overlay AS price_overlay,
        r.meter AS meter,
        r.pricing_currency AS pricing_currency,
        r.list_unit_price AS pricing_list_price,
        r.contracted_unit_price AS pricing_contracted_price,
        -- Converted to the billing currency by the call's own rate, as the engine did.
        toDecimal128(roundBankers(toDecimal256(r.list_unit_price, 18) * toDecimal256(u.fx, 18), 18), 18) AS list_price,
        toDecimal128(roundBankers(toDecimal256(r.contracted_unit_price, 18) * toDecimal256(u.fx, 18), 18), 18) AS contracted_price,
        sum(u.quantity) AS consumed_quantity,
        if(meter = 'request' OR startsWith(meter, 'unit:'), consumed_quantity, consumed_quantity / 1000000) AS pricing_quantity,
        count() AS calls,
        toStartOfMonth(hour) AS billing_month,
        multiIf(
            meter = 'input', 'Input tokens',
            meter = 'cache_read', 'Cache read tokens',
            meter = 'cache_write_5m', 'Cache write tokens (5 minutes)',
            meter = 'cache_write_1h', 'Cache write tokens (1 hour)',
            meter = 'output', 'Output tokens',
            meter = 'reasoning', 'Reasoning tokens',
            meter = 'input_audio', 'Input audio tokens',
            meter = 'cache_audio_read', 'Cache read audio tokens',
            meter = 'output_audio', 'Output audio tokens',
            meter = 'input_image', 'Input image tokens',
            meter = 'output_image', 'Output image tokens',
            meter = 'request', 'Requests',
            substring(meter, 6)) AS meter_name
    FROM
    (
        SELECT
            ts, provider, model, service_tier, scenario_id, environment, owner, role, currency,
            price_book_version, price_overlay,
            ifNull(fx_rate, toDecimal128(1, 18)) AS fx,
            toInt64(input_tokens + cache_read_tokens + cache_write_tokens + cache_write_1h_tokens
                + input_audio_tokens + cache_audio_read_tokens + input_image_tokens) AS prompt,
            toUInt8(toDayOfWeek(ts, 0, 'UTC')) AS weekday,
            toUInt16(toHour(ts) * 60 + toMinute(ts)) AS minute_of_day,
            m.1 AS meter,
            m.2 AS quantity
        FROM calls FINAL
        ARRAY JOIN (arrayFilter(x -> x.2 != 0, arrayConcat(
            [
                ('input', toDecimal128(input_tokens, 9)),
                ('cache_read', toDecimal128(cache_read_tokens, 9)),
                ('cache_write_5m', toDecimal128(cache_write_tokens, 9)),
                ('cache_write_1h', toDecimal128(cache_write_1h_tokens, 9)),
                ('output', toDecimal128(output_tokens, 9)),
                ('reasoning', toDecimal128(reasoning_tokens, 9)),
                ('input_audio', toDecimal128(input_audio_tokens, 9)),
                ('cache_audio_read', toDecimal128(cache_audio_read_tokens, 9)),
                ('output_audio', toDecimal128(output_audio_tokens, 9)),
                ('input_image', toDecimal128(input_image_tokens, 9)),
                ('output_image', toDecimal128(output_image_tokens, 9)),
                ('request', toDecimal128(1, 9))
            ],
            arrayMap((k, v) -> (concat('unit:', k), toDecimal128(v, 9)), mapKeys(units), mapValues(units))))) AS m
        WHERE cost_total IS NOT NULL
    ) AS u
    INNER JOIN
    (
        SELECT price_book_version, provider, model, service_tier, owner, environment, valid_from,
            valid_to, prompt_above, prompt_upto, off_peak, off_peak_windows, price_overlay, meter,
            pricing_currency, list_unit_price, contracted_unit_price
        FROM focus_rates FINAL
    ) AS r
    ON u.price_book_version = r.price_book_version AND u.provider = r.provider
        AND u.model = r.model AND u.service_tier = r.service_tier AND u.owner = r.owner
        AND u.environment = r.environment AND u.price_overlay = r.price_overlay AND u.meter = r.meter
    WHERE u.ts >= r.valid_from AND u.ts < r.valid_to
        AND u.prompt > r.prompt_above AND u.prompt <= r.prompt_upto
        AND r.off_peak = arrayExists(w -> w.1 = u.weekday AND w.2 <= u.minute_of_day AND u.minute_of_day < w.3, r.off_peak_windows)
    GROUP BY hour, provider, model, service_tier, scenario_id, environment, owner, role, currency,
        price_book_version, price_overlay, meter, pricing_currency, pricing_list_price,
        pricing_contracted_price, list_price, contracted_price
)
COMMENT 'FinOps FOCUS 1.2/1.3 usage rows per hour, provider, model, service tier, usage class (SkuMeter), tag set and unit price; ListCost before negotiated overlays, ContractedCost/BilledCost after; unit prices from focus_rates, which costflow focus export loads from the price book';
