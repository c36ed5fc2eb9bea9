"""Stage 2: enriched records from Kafka into an analytics store, in batches."""

from __future__ import annotations
