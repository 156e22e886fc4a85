"""The `understudy` command: serve, worker and keys (admin), demo, label, train, import and export (label), and the
benchmarks (bench). Each command parses its options and calls one function of the service; errors print one line
and exit 2. Nothing in the service imports this package."""

from __future__ import annotations

import sys

from service.cli import admin, bench, label
from service.cli.app import app

__all__ = ["admin", "app", "bench", "label", "main"]


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
