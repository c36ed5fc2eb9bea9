"""The demo workload: realistic scenarios, cascades, retries, late outcomes."""

from __future__ import annotations
