"""Public pricing faults of peer tools, turned into inputs and priced with the book
costflow ships as default; each expected value is worked by hand from the providers'
published prices (USD per million tokens) in the comment beside it."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from pipeline.errors import ServiceTierNotPriced, UnitNotPriced
from pipeline.events.models import CallEvent
from pipeline.pricing import CompiledBook, load_price_book, price_call
from pipeline.resources import default_price_book


@pytest.fixture(scope="module")
def default() -> CompiledBook:
    return CompiledBook(load_price_book(default_price_book()))


def cost(book: CompiledBook, provider: str, model: str, tier: str = "standard",
         units: dict[str, int] | None = None, **usage: int) -> Decimal:  # fmt: skip
    call: dict[str, Any] = {
        "event_id": "e", "task_id": "t", "ts": "2026-11-20T12:00:00Z", "provider": provider,
        "model": model, "service_tier": tier, "usage": usage, "units": units or {},
    }  # fmt: skip
    return price_call(CallEvent.model_validate(call), book).total


def test_one_hour_cache_writes_at_twice_input_not_the_five_minute_rate(
    default: CompiledBook,
) -> None:
    # Claude Haiku 4.5: 1,200 x $1 + 50,000 x $2 (1-hour write = 2 x input) + 800 x $5
    got = cost(default, "anthropic", "claude-haiku-4-5", input_tokens=1200,
               cache_write_1h_tokens=50_000, output_tokens=800)  # fmt: skip
    assert got == Decimal("0.1052")


@pytest.mark.parametrize(
    ("model", "tier", "expected"),
    [
        # o4-mini flex (Batch API rates): 10,000 x $0.55 + 2,000 x $2.20
        ("o4-mini", "flex", Decimal("0.0099")),
        # gpt-4.1-mini batch: 10,000 x $0.20 + 2,000 x $0.80
        ("gpt-4.1-mini", "batch", Decimal("0.0036")),
        # gpt-4o-mini batch: 10,000 x $0.075 + 2,000 x $0.30
        ("gpt-4o-mini", "batch", Decimal("0.00135")),
    ],
)
def test_unlisted_service_tiers_follow_the_providers_rule_never_standard(
    default: CompiledBook, model: str, tier: str, expected: Decimal
) -> None:
    assert cost(default, "openai", model, tier, input_tokens=10_000, output_tokens=2000) == expected


def test_a_discount_tier_discounts_every_class(default: CompiledBook) -> None:
    # Haiku 4.5 batch, 50% of every class: 1,200 x $0.50 + 40,000 x $0.05 (read)
    # + 10,000 x $0.625 (5-minute write) + 800 x $2.50
    got = cost(default, "anthropic", "claude-haiku-4-5", "batch", input_tokens=1200,
               cache_read_tokens=40_000, cache_write_tokens=10_000, output_tokens=800)  # fmt: skip
    assert got == Decimal("0.01085")


def test_per_request_fees_are_priced_not_dropped(default: CompiledBook) -> None:
    # Haiku 4.5: 5,000 x $1 + 600 x $5 per MTok = $0.008, plus 3 searches x $0.01
    got = cost(default, "anthropic", "claude-haiku-4-5", units={"web_search": 3},
               input_tokens=5000, output_tokens=600)  # fmt: skip
    assert got == Decimal("0.038")


def test_what_no_rule_covers_is_an_error_on_the_call(default: CompiledBook) -> None:
    # OpenAI's priority prices differ per model: no rule. A model whose list has them
    # uses them (gpt-4o-mini priority: 1,000 x $0.25 + 1,000 x $1.00 per MTok) ...
    got = cost(default, "openai", "gpt-4o-mini", "priority", input_tokens=1000,
               output_tokens=1000)  # fmt: skip
    assert got == Decimal("0.00125")
    # ... and one whose list has none is refused, never billed at the standard rate.
    with pytest.raises(ServiceTierNotPriced):
        cost(default, "openai", "gpt-4-turbo", "priority", input_tokens=10)
    # OpenAI has no 1-hour cache write; a gateway that sends one gets an error.
    with pytest.raises(UnitNotPriced, match="cache_write_1h_tokens"):
        cost(default, "openai", "gpt-4o-mini", cache_write_1h_tokens=10)


def test_batch_above_the_long_context_threshold_halves_the_long_context_rates(
    default: CompiledBook,
) -> None:
    # gpt-5.4 batch, 300,000-token prompt (> 272k): 300,000 x $2.50 + 5,000 x $11.25,
    # the >272k standard rates ($5.00 / $22.50) halved; never the flat batch $1.25 / $7.50
    got = cost(default, "openai", "gpt-5.4", "batch", input_tokens=300_000, output_tokens=5000)
    assert got == Decimal("0.80625")
    # Below the threshold the flat batch rates: 100,000 x $1.25 + 5,000 x $7.50
    small = cost(default, "openai", "gpt-5.4", "batch", input_tokens=100_000, output_tokens=5000)
    assert small == Decimal("0.1625")


def test_gemini_above_200k_keeps_its_long_context_prices_under_every_name(
    default: CompiledBook,
) -> None:
    # Gemini 2.5 Pro above 200k: 250,000 x $2.50 + 1,000 x $15.00 per MTok = $0.64,
    # whether the gateway says google, gemini or vertex_ai
    for provider in ("google", "gemini", "vertex_ai"):
        got = cost(default, provider, "gemini-2.5-pro", input_tokens=250_000, output_tokens=1000)
        assert got == Decimal("0.64"), provider
    # and its batch mode (Google's rule: 50%) above 200k: $0.32
    batch = cost(default, "google", "gemini-2.5-pro", "batch", input_tokens=250_000,
                 output_tokens=1000)  # fmt: skip
    assert batch == Decimal("0.32")


def test_audio_tokens_have_their_own_class_and_rate(default: CompiledBook) -> None:
    # gpt-audio-mini: 15 text in x $0.60 + 13 text out x $2.40 + 34 audio out x $20.00
    # per MTok = $0.0007202 (folded into text output it would be 5.9x under)
    call = CallEvent.model_validate(
        {"event_id": "e", "task_id": "t", "ts": "2026-11-20T12:00:00Z", "provider": "openai",
         "model": "gpt-audio-mini",
         "usage": {"input_tokens": 15, "output_tokens": 13, "output_audio_tokens": 34}}
    )  # fmt: skip
    priced = price_call(call, default)
    assert priced.total == Decimal("0.0007202")
    assert (priced.audio, priced.output) == (Decimal("0.00068"), Decimal("0.0000312"))
    # A model whose list has no audio rate refuses audio tokens, never prices them as text.
    with pytest.raises(UnitNotPriced, match="output_audio_tokens"):
        cost(default, "openai", "gpt-4o-mini", output_audio_tokens=1)


def test_deepseek_off_peak_by_the_calls_event_time(default: CompiledBook) -> None:
    # deepseek-flash: $0.30 per MTok input at peak, $0.15 off-peak (weekdays 10:00-24:00,
    # 00:00-01:00 and 04:00-06:00 UTC; all weekend); 2026-11-18 is a Wednesday
    def at(ts: str) -> Decimal:
        event = CallEvent.model_validate(
            {"event_id": "e", "task_id": "t", "ts": ts, "provider": "deepseek",
             "model": "deepseek-flash", "usage": {"input_tokens": 1_000_000}}
        )  # fmt: skip
        return price_call(event, default).total

    assert at("2026-11-18T08:00:00Z") == Decimal("0.30")
    assert at("2026-11-18T12:00:00Z") == Decimal("0.15")
    assert at("2026-11-21T08:00:00Z") == Decimal("0.15")  # Saturday


def test_claude_sonnet_4_5_long_context_from_the_books_correction(default: CompiledBook) -> None:
    # 250,000 input + 1,000 output above 200K: 250,000 x $6 + 1,000 x $22.50 per MTok
    for model in ("claude-sonnet-4-5", "claude-sonnet-4-5-20250929"):
        got = cost(default, "anthropic", model, input_tokens=250_000, output_tokens=1000)
        assert got == Decimal("1.5225"), model
    # batch: Anthropic's 50% of the long-context rates
    batch = cost(default, "anthropic", "claude-sonnet-4-5", "batch", input_tokens=250_000,
                 output_tokens=1000)  # fmt: skip
    assert batch == Decimal("0.76125")


def test_openais_default_tier_is_standard_and_auto_is_refused(default: CompiledBook) -> None:
    from pipeline.errors import SchemaViolation
    from pipeline.events.decode import decode_event

    body = {"type": "call", "event_id": "e", "task_id": "t", "ts": "2026-11-20T12:00:00Z",
            "provider": "openai", "model": "gpt-4o-mini"}  # fmt: skip
    body["usage"] = {"input_tokens": 1_000_000}
    as_sent = decode_event(json.dumps({**body, "service_tier": "default"}).encode(), "call")
    assert isinstance(as_sent, CallEvent) and as_sent.service_tier.value == "standard"
    assert price_call(as_sent, default).total == Decimal("0.15")
    # "auto" is what was asked for, not the tier that billed the call
    with pytest.raises(SchemaViolation, match="service_tier"):
        decode_event(json.dumps({**body, "service_tier": "auto"}).encode(), "call")


def test_a_missing_rate_says_which_tier_lacks_it(default: CompiledBook) -> None:
    # gpt-5.4 lists priority rates below 272k only
    with pytest.raises(UnitNotPriced, match="on the 'priority' service tier above 272,000"):
        cost(default, "openai", "gpt-5.4", "priority", input_tokens=300_000)


def partial(book: CompiledBook, provider: str, model: str, tier: str = "standard",
            units: dict[str, int] | None = None, **usage: int) -> UnitNotPriced:  # fmt: skip
    with pytest.raises(UnitNotPriced) as raised:
        cost(book, provider, model, tier, units, **usage)
    return raised.value


def test_a_call_priced_in_part_keeps_what_could_be_priced(default: CompiledBook) -> None:
    # OpenAI has no 1-hour cache write and gpt-4o-mini no "code_interpreter" price:
    # the rest is still priced. gpt-4o-mini: 2,000 x $0.15 + 1,000 x $0.075 (read)
    # + 500 x $0.60 per MTok = $0.0003 + $0.000075 + $0.0003 = $0.000675.
    error = partial(default, "openai", "gpt-4o-mini", units={"code_interpreter": 2},
                    input_tokens=2000, cache_read_tokens=1000, cache_write_1h_tokens=70,
                    output_tokens=500)  # fmt: skip
    assert error.dimensions == ("cache_write_1h_tokens", "code_interpreter")
    assert error.known is not None
    assert error.known.total == Decimal("0.000675")
    assert (error.known.input, error.known.cache_read, error.known.output) == (
        Decimal("0.0003"), Decimal("0.000075"), Decimal("0.0003"),
    )  # fmt: skip
    assert error.known.cache_write == 0 and error.known.units == 0
    assert "'cache_write_1h_tokens', 'code_interpreter'" in str(error)


def test_a_tier_without_a_class_keeps_the_other_classes_of_the_tier(
    default: CompiledBook,
) -> None:
    # gpt-5.4 priority lists no rates above 272k prompt tokens: the call's input is
    # named, and what is known of it is $0 (a lower bound of $0, shown as ">= $0").
    error = partial(default, "openai", "gpt-5.4", "priority", input_tokens=300_000)
    assert error.dimensions == ("input_tokens",) and error.known is not None
    assert error.known.total == 0


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("anthropic", "claude-sonnet-4-20250514"),
        ("anthropic", "claude-sonnet-4-0"),
        ("vertex_ai", "claude-sonnet-4@20250514"),
    ],
)
def test_claude_sonnet_4_long_context_on_anthropic_and_vertex(
    default: CompiledBook, provider: str, model: str
) -> None:
    # Above 200k input tokens: 300,000 x $6 + 100,000 x $22.50 per MTok = $1.80 + $2.25
    assert cost(default, provider, model, input_tokens=300_000, output_tokens=100_000) == (
        Decimal("4.05")
    )
    # Below: 100,000 x $3 + 100,000 x $15 = $0.30 + $1.50
    assert cost(default, provider, model, input_tokens=100_000, output_tokens=100_000) == (
        Decimal("1.8")
    )


def test_implausible_list_prices_do_not_undercut_the_real_ones(default: CompiledBook) -> None:
    # LiteLLM lists Vertex AI's Gemini 2.5 Flash audio at $0.30 "above 200k" against
    # $1.00 below; Flash has no long-context price: 100,000 x $0.30 + 150,000 x $1.00
    # + 10,000 x $2.50 per MTok = $0.03 + $0.15 + $0.025.
    got = cost(default, "vertex_ai", "gemini-2.5-flash", input_tokens=100_000,
               input_audio_tokens=150_000, output_tokens=10_000)  # fmt: skip
    assert got == Decimal("0.205")
    # ... and Gemini 2.5 Pro cache writes above 200k at $0.25: Vertex AI bills creating
    # a cache at the input price (its rule), above 200k $2.50: 100,000 x $2.50 +
    # 300,000 x $2.50 + 100,000 x $15 = $0.25 + $0.75 + $1.50.
    got = cost(default, "vertex_ai", "gemini-2.5-pro", input_tokens=100_000,
               cache_write_tokens=300_000, output_tokens=100_000)  # fmt: skip
    assert got == Decimal("2.50")
    # Below 200k: 10,000 x $1.25 + 30,000 x $1.25 + 1,000 x $10 = $0.06 (no longer refused)
    got = cost(default, "vertex_ai", "gemini-2.5-pro", input_tokens=10_000,
               cache_write_tokens=30_000, output_tokens=1000)  # fmt: skip
    assert got == Decimal("0.06")
