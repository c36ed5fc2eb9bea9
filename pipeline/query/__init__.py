"""ClickHouse access: client, migrations, reports."""

from __future__ import annotations
