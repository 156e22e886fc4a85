"""Benchmark results as JSON files."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def write_json(result: Mapping[str, Any], path: Path | None) -> None:
    """Write a benchmark's result to ``path`` (its folder made if needed); nothing when ``path`` is None."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
