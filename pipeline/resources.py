"""Where the files costflow ships beside its code are: the only module that knows.

The source of truth is the repository's top level: ``sql/`` (migrations),
``pricing/default/`` (the default price book), ``pricing/fixed-costs/`` (the example
fixed-cost declaration), ``deploy/alerts/`` (the example alert rules) and
``schemas/`` (generated JSON Schema). The wheel carries
each as a data package inside ``pipeline`` (``pipeline._sql`` and so on, mapped in
``pyproject.toml``), so an installed costflow, a Docker image included, finds them
without a checkout. An editable install (``./dev``) does not expose mapped
packages, so there the files are read in place, from the checkout.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from pipeline.errors import ConfigError

_CHECKOUT = Path(__file__).resolve().parents[1]

# data package -> its source directory in the repository
BUNDLED = {
    "pipeline._sql": "sql",
    "pipeline._price_book": "pricing/default",
    "pipeline._fixed_costs": "pricing/fixed-costs",
    "pipeline._schemas": "schemas",
    "pipeline._alert_rules": "deploy/alerts",
}


def _bundled(package: str) -> Path:
    """The directory of a data package, installed or in the checkout."""
    try:
        spec = importlib.util.find_spec(package)
    except ModuleNotFoundError:
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            if Path(location).is_dir():
                return Path(location)
    in_checkout = _CHECKOUT / BUNDLED[package]
    if in_checkout.is_dir():
        return in_checkout
    raise ConfigError(
        f"costflow's bundled files ({BUNDLED[package]}/) are missing: neither the package "
        f"{package} nor {in_checkout} exists. Reinstall costflow (pip install costflow) "
        "or run it from a complete checkout."
    )


def sql_dir() -> Path:
    """The numbered migrations (``NNNN_name.sql``)."""
    return _bundled("pipeline._sql")


def default_price_book() -> Path:
    """The price book used when no ``--price-book`` / ``COSTFLOW_WORKER_PRICE_BOOK_DIR``."""
    return _bundled("pipeline._price_book")


def schema_dir() -> Path:
    """The committed JSON Schema of events, price books and fixed-cost declarations."""
    return _bundled("pipeline._schemas")


def example_fixed_costs() -> Path:
    """The example fixed-cost declaration the demo loads."""
    return _bundled("pipeline._fixed_costs") / "2026-11.yaml"


def example_alert_rules() -> Path:
    """The example alert rule file (``costflow alerts validate`` without arguments)."""
    return _bundled("pipeline._alert_rules") / "rules.yaml"
