"""Where and how a benchmark writes its figures: JSON, with the machine and the time."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any


def write_result(out: Path, result: dict[str, Any]) -> dict[str, Any]:
    """Add ``machine`` and ``when`` to ``result`` and write it to ``out`` as JSON."""
    result = {
        **result,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result
