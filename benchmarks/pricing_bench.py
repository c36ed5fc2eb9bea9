"""Calls priced per second: our engine beside LiteLLM's cost_per_token, same records, same run;
and the shipped default book's load and compile time and memory.

.venv/bin/python -m benchmarks.pricing_bench --calls 20000 [--book imported|default]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

from pipeline.events.models import CallEvent
from pipeline.pricing import CompiledBook, price_call
from pipeline.pricing.importers.litellm import import_litellm

MODELS = [
    ("anthropic", "claude-sonnet-4-5"),
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4.1"),
    ("gemini", "gemini-2.5-flash"),
    ("anthropic", "claude-haiku-4-5"),
]


def records(n: int) -> list[dict[str, int | str]]:
    rng = random.Random(1)
    out = []
    for _ in range(n):
        provider, model = rng.choice(MODELS)
        out.append(
            {
                "provider": provider,
                "model": model,
                "input_tokens": rng.randint(10, 20_000),
                "cache_read_tokens": rng.randint(0, 8_000),
                "output_tokens": rng.randint(1, 2_000),
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/pricing.json"))
    parser.add_argument(
        "--book",
        choices=["imported", "default"],
        default="default",
        help="price with a fresh import of LiteLLM's list, or the book costflow ships",
    )
    args = parser.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm
    from litellm import cost_per_token
    from litellm.types.utils import PromptTokensDetailsWrapper, Usage

    source = json.loads(
        (Path(litellm.__file__).parent / "model_prices_and_context_window_backup.json").read_text()
    )
    tracemalloc.start()
    started = time.perf_counter()
    if args.book == "default":
        from pipeline.pricing import load_price_book
        from pipeline.resources import default_price_book

        book = CompiledBook(load_price_book(default_price_book()))
    else:
        book = CompiledBook(import_litellm(source, datetime(2020, 1, 1, tzinfo=UTC), "bench")[0])
    compile_s = time.perf_counter() - started
    book_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    data = records(args.calls)
    # Parsing events is part of pricing a record in the pipeline; build them outside the clock
    # for both sides, so each side is timed on its own pricing call only.
    calls = [
        CallEvent.model_validate(
            {
                "event_id": "e",
                "task_id": "t",
                "ts": "2026-01-01T00:00:00Z",
                "provider": r["provider"],
                "model": r["model"],
                "usage": {k: r[k] for k in ("input_tokens", "cache_read_tokens", "output_tokens")},
            }
        )
        for r in data
    ]
    usages = [
        Usage(
            prompt_tokens=int(r["input_tokens"]) + int(r["cache_read_tokens"]),
            completion_tokens=int(r["output_tokens"]),
            prompt_tokens_details=PromptTokensDetailsWrapper(
                cached_tokens=int(r["cache_read_tokens"])
            ),
            cache_read_input_tokens=int(r["cache_read_tokens"]),
        )
        for r in data
    ]
    started = time.perf_counter()
    for call in calls:
        price_call(call, book)
    ours_s = time.perf_counter() - started
    started = time.perf_counter()
    for record, usage in zip(data, usages, strict=True):
        cost_per_token(
            model=str(record["model"]),
            custom_llm_provider=str(record["provider"]),
            usage_object=usage,
        )
    theirs_s = time.perf_counter() - started
    result = {
        "benchmark": "pricing",
        "calls": args.calls,
        "book": args.book,
        "book_entries": len(book.book.entries),
        "book_load_and_compile_s": compile_s,
        "book_memory_bytes": book_bytes,
        "costflow_calls_per_s": args.calls / ours_s,
        "litellm_calls_per_s": args.calls / theirs_s,
        "speedup": theirs_s / ours_s,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"costflow engine   {result['costflow_calls_per_s']:>10,.0f} calls/s (exact Decimal)")
    print(f"litellm           {result['litellm_calls_per_s']:>10,.0f} calls/s (float)")
    print(
        f"{args.book} book of {result['book_entries']:,} entries loaded and compiled in "
        f"{compile_s:.2f} s, {book_bytes / 1e6:.1f} MB (tracemalloc); wrote {args.out}"
    )


if __name__ == "__main__":
    main()
