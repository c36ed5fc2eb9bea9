"""The stores stage 2 can write to, selected by ``COSTFLOW_SINK_STORE``.

A store is a subpackage of ``pipeline.sink`` with an ``open_sink(settings) -> Sink``
function; register it here under the name users put in the setting. Imported
lazily, so a store's client library is needed only when it is selected.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from pipeline.errors import ConfigError

if TYPE_CHECKING:
    from pipeline.config import Settings
    from pipeline.sink.base import Sink

# name -> module with open_sink(settings)
STORES = {"clickhouse": "pipeline.sink.clickhouse"}


def open_store(settings: Settings) -> Sink:
    """The configured store's sink, connected and ready. Raises ConfigError for an
    unknown store name."""
    name = settings.sink.store
    if name not in STORES:
        raise ConfigError(
            f"COSTFLOW_SINK_STORE={name!r} is not a store costflow has; choose one of "
            f"{sorted(STORES)}"
        )
    module = importlib.import_module(STORES[name])
    sink: Sink = module.open_sink(settings)
    return sink
