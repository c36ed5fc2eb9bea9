"""Events in without writing the contract: the real ``litellm.completion`` (with
``mock_response``, no network) metered by costflow's LiteLLM callback, and an
OpenAI SDK response sent with the Emitter, through the embedded stack into
ClickHouse. Prices are worked by hand from the book's rates."""

from __future__ import annotations

import os
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from openai.types.chat import ChatCompletion

from pipeline.config import Settings
from pipeline.emit.emitter import Emitter
from pipeline.runtime.dead_letter import replay_dead_letters
from tests.integration.conftest import await_condition, clickhouse_of, live_stack

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never fetch over the network
litellm = pytest.importorskip("litellm")
from pipeline.emit.litellm_logger import CostflowLogger  # noqa: E402  (needs litellm)

pytestmark = pytest.mark.integration


def _mock(prompt: int, cached: int, written: int, completion: int, reasoning: int) -> object:
    return litellm.ModelResponse(
        model="claude-sonnet-4-5",
        choices=[{"index": 0, "finish_reason": "stop", "message": {"role": "assistant"}}],
        usage=litellm.Usage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            prompt_tokens_details={"cached_tokens": cached, "cache_creation_tokens": written},
            completion_tokens_details={"reasoning_tokens": reasoning},
        ),
    )


def test_litellm_calls_and_sdk_responses_are_priced_end_to_end(
    isolated_settings: Settings,
) -> None:
    with live_stack(isolated_settings) as live:
        logger = CostflowLogger(live.kafka, live.settings.topics)
        litellm.callbacks = [logger]
        try:
            emitter = Emitter(live.kafka, live.settings.topics)
            emitter.task("t-ll", scenario_id="support", owner="team-a", environment="prod")
            tagged = {"costflow_task_id": "t-ll", "costflow_role": "planner"}
            litellm.completion(
                model="anthropic/claude-sonnet-4-5",
                messages=[{"role": "user", "content": "hi"}],
                mock_response=_mock(2300, 1000, 300, 500, 120),
                metadata=tagged,
            )
            with pytest.raises(Exception, match="boom"):
                litellm.completion(
                    model="anthropic/claude-sonnet-4-5",
                    messages=[{"role": "user", "content": "hi"}],
                    mock_response=Exception("boom"),
                    metadata=tagged,
                )
            # cached above prompt: no mapper can price it; dead-lettered, not guessed
            litellm.completion(
                model="anthropic/claude-sonnet-4-5",
                messages=[{"role": "user", "content": "hi"}],
                mock_response=_mock(100, 200, 0, 5, 0),
                metadata=tagged,
            )
            # LiteLLM runs sync callbacks on its own thread: wait for all three
            await_condition(
                lambda: logger.emitted + logger.dead_lettered + logger.failures >= 3,
                60,
                "the LiteLLM callbacks",
            )
            logger.flush()
            sdk_response = ChatCompletion.model_validate(
                {
                    "id": "chatcmpl-9",
                    "object": "chat.completion",
                    "created": 1_764_000_000,
                    "model": "gpt-4o-mini",
                    "service_tier": "default",
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": None},
                        }
                    ],
                    "usage": {
                        "prompt_tokens": 10_000,
                        "completion_tokens": 1_000,
                        "total_tokens": 11_000,
                        "prompt_tokens_details": {"cached_tokens": 4_000},
                    },
                }
            )
            for _ in range(2):  # the same call sent twice counts once
                emitter.call(
                    sdk_response,
                    task_id="t-sdk",
                    event_id="chatcmpl-9",
                    # a gateway's billed amount, 0.0002 above the book's price
                    attributes={"provider_reported_cost": "0.002"},
                )
            emitter.outcome("t-ll", "accepted")
            emitter.close()
        finally:
            litellm.callbacks = []
            logger.close()
        live.drain(live.stack.check_alive)
        # The callback's dead letter holds LiteLLM's usage, not an event: not replayable
        skipped: Counter[str] = Counter()
        assert replay_dead_letters(live.kafka, live.settings.topics, None, skipped) == {}
        assert skipped == {"usage_not_mappable from litellm-callback": 1}
    assert (logger.emitted, logger.dead_lettered, logger.failures) == (2, 1, 0)

    with clickhouse_of(live.settings) as client:
        tasks = {
            row[0]: row[1:]
            for row in client.query(
                "SELECT task_id, calls, total_cost, scenario_id, owner, outcome FROM tasks FINAL"
            ).result_rows
        }
        # claude-sonnet-4-5 at $3 in / $0.30 cache read / $3.75 5m write / $15 out per MTok:
        # LiteLLM's 2300 prompt = 1000 fresh + 1000 read + 300 written; 500 out incl. 120
        # reasoning: 1000*3 + 1000*0.30 + 300*3.75 + 500*15 = 11,925 -> $0.011925.
        # The failed call is counted, at no cost.
        assert tasks["t-ll"] == (2, Decimal("0.011925"), "support", "team-a", "accepted")
        # gpt-4o-mini at $0.15 in / $0.075 cached / $0.60 out per MTok:
        # 6000*0.15 + 4000*0.075 + 1000*0.60 = 900 + 300 + 600 = 1,800 -> $0.0018
        assert tasks["t-sdk"][:2] == (1, Decimal("0.0018"))
        reported = client.query(
            "SELECT status, role, attributes['provider_reported_cost'] FROM calls FINAL "
            "WHERE task_id = 't-ll' ORDER BY status"
        ).result_rows
        # LiteLLM's own price sits beside costflow's, for reconciliation
        assert reported[0][:2] == ("error", "planner")
        assert reported[1][:2] == ("ok", "planner")
        assert Decimal(reported[1][2]) == Decimal("0.011925")
        dead = client.query("SELECT reason, source_topic FROM dead_letters").result_rows
        assert dead == [("usage_not_mappable", "litellm-callback")]

        # Reconciliation: LiteLLM's price agrees with the book's; the gateway's is 11% above.
        verdicts = client.query(
            "SELECT task_id, status, verdict, difference FROM v_cost_reconciliation_calls "
            "ORDER BY task_id, status"
        ).result_rows
        assert verdicts == [
            ("t-ll", "error", "agrees", Decimal(0)),
            ("t-ll", "ok", "agrees", Decimal(0)),
            ("t-sdk", "ok", "differs", Decimal("-0.0002")),
        ]
        daily = client.query(
            "SELECT provider, model, calls_reported, calls_differing, reported_cost, computed_cost "
            "FROM v_cost_reconciliation_daily ORDER BY provider"
        ).result_rows
        assert daily == [
            ("anthropic", "claude-sonnet-4-5", 2, 0, Decimal("0.011925"), Decimal("0.011925")),
            ("openai", "gpt-4o-mini", 1, 1, Decimal("0.002"), Decimal("0.0018")),
        ]


def test_closing_right_after_a_call_loses_nothing(tmp_path: Any) -> None:
    """LiteLLM runs callbacks on its logging threads after the call returns; a close
    at once must wait for them (a new user lost every event of a one-call script)."""
    from confluent_kafka import Consumer, TopicPartition

    from pipeline.config import KafkaSettings, TopicSettings
    from pipeline.embedded.broker import EmbeddedBroker
    from pipeline.kafka.topics import ensure_topics

    topics = TopicSettings.with_prefix("it-close.")
    with EmbeddedBroker() as broker:
        kafka = KafkaSettings(bootstrap=broker.bootstrap)
        ensure_topics(kafka, topics)
        logger = CostflowLogger(kafka, topics)
        litellm.callbacks = [logger]
        try:
            litellm.completion(
                model="anthropic/claude-sonnet-4-5",
                messages=[{"role": "user", "content": "hi"}],
                mock_response="ok",
                metadata={"costflow_task_id": "t-close"},
            )
        finally:
            litellm.callbacks = []
            logger.close()
        assert (logger.emitted, logger.failures) == (1, 0)
        consumer = Consumer({**kafka.librdkafka(), "group.id": "it-close-check"})
        partitions = consumer.list_topics(topics.calls, timeout=10).topics[topics.calls]
        stored = sum(
            consumer.get_watermark_offsets(TopicPartition(topics.calls, p), timeout=10)[1]
            for p in partitions.partitions
        )
        consumer.close()
    assert stored == 1
