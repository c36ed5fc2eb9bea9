"""Pricing is pure: call + price book in, cost out. No Kafka, no ClickHouse."""

from __future__ import annotations

from pipeline.pricing.book import PriceBook, PriceEntry, load_price_book
from pipeline.pricing.engine import CallCost, CompiledBook, price_call

__all__ = ["CallCost", "CompiledBook", "PriceBook", "PriceEntry", "load_price_book", "price_call"]
