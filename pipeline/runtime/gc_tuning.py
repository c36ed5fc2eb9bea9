"""Cyclic garbage collection tuned for a streaming process.

Stage 1 and the sink allocate millions of short-lived, acyclic objects (parsed
records, rows, states); reference counting frees them. CPython's default
collection thresholds (700 allocations for a young collection) still walk them
thousands of times a minute, and each full collection walks the whole heap,
caches included: measured with ``gc.callbacks`` on the pipeline benchmark
(20,000 tasks), collection took 5.7 s of the sink's 13.7 s of CPU and 1.3 s of
the worker's 4.8 s.

So: everything alive after start-up (modules, the price book, the app) is moved
out of the collector's sight with :func:`gc.freeze`, and young collections run
every ``YOUNG_ALLOCATIONS`` allocations instead of 700. Cycles are still
collected; a cycle lives at most a few collections longer, which bounds the
extra memory.
"""

from __future__ import annotations

import gc

# Allocations (net of deallocations) between young-generation collections.
YOUNG_ALLOCATIONS = 50_000
# Young collections per middle one, middle collections per full one (CPython's
# own second threshold is 10; a full one also waits for the long-lived objects
# to grow by 25%).
MIDDLE_EVERY = 20
FULL_EVERY = 20


def tune_for_streaming() -> None:
    """Freeze what start-up built and collect less often (see the module)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_ALLOCATIONS, MIDDLE_EVERY, FULL_EVERY)
