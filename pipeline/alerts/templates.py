"""Annotation templates in Prometheus' spelling: ``{{ $labels.owner }}``, ``{{ $value }}``,
``{{ $expected }}``, ``{{ $impact }}``, ``{{ $details.<name> }}``.

Only these substitutions, not Go's template language: an unknown placeholder stays as
written, so a typo shows in the notification instead of silently vanishing.
``{{ $value }}`` of a cost that counts unpriced calls as 0 (details ``value_bound:
lower``) renders as ``≥ 12.5``: at least that much, never passed off as the spend.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal

_PLACEHOLDER = re.compile(r"\{\{\s*\$(labels|details)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}|"
                          r"\{\{\s*\$(value|expected|impact)\s*\}\}")  # fmt: skip


_BRACES = re.compile(r"\{\{.*?\}\}", re.DOTALL)


def unknown_placeholders(text: str) -> list[str]:
    """The ``{{ ... }}`` of ``text`` that are not placeholders this module fills (a
    typo like ``{{ $valeu }}``, or Go template syntax like ``{{ .Value }}``)."""
    return [m.group(0) for m in _BRACES.finditer(text) if not _PLACEHOLDER.fullmatch(m.group(0))]


def label_names(text: str) -> list[str]:
    """The label names ``text`` reads (``{{ $labels.<name> }}``)."""
    return [m.group(2) for m in _PLACEHOLDER.finditer(text) if m.group(1) == "labels"]


def show(value: Decimal | float | None) -> str:
    """A figure as text, never in exponent form: exact decimals as they are, floats
    (ratios, z, seconds) to 4 significant digits and below 1e-12 as 0 (rounding
    noise of a sum of ratios), nothing as the empty string."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if abs(value) < 1e-12:
        return "0"
    return format(Decimal(f"{value:.4g}").normalize(), "f")


def render(
    text: str,
    labels: Mapping[str, str],
    value: Decimal | float | None,
    expected: Decimal | float | None,
    impact: Decimal | None,
    details: Mapping[str, str],
) -> str:
    """``text`` with its placeholders filled."""

    def fill(match: re.Match[str]) -> str:
        space, name, scalar = match.group(1), match.group(2), match.group(3)
        if space == "labels":
            return labels.get(name, match.group(0))
        if space == "details":
            return details.get(name, match.group(0))
        text = show({"value": value, "expected": expected, "impact": impact}[scalar])
        # A cost that leaves unpriced calls out reads as what it is: at least this much.
        if scalar == "value" and text and details.get("value_bound") == "lower":
            return "≥ " + text
        return text

    return _PLACEHOLDER.sub(fill, text)
