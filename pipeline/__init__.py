"""costflow: streaming cost attribution for LLM usage (cost per accepted outcome)."""

from __future__ import annotations

__version__ = "0.1.0"
