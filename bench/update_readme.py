"""Copy the tables of the latest benchmark results (bench/results/*.json) into README.md between markers.

    .venv/bin/python bench/update_readme.py

A block <!-- bench:NAME --> ... <!-- /bench:NAME --> gets the "table" of bench/results/NAME.json (or, for a
list of such files, NAME being a glob like quality_*, each one's table in turn)."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"(<!-- bench:(?P<name>[\w*.-]+) -->\n)(.*?)(<!-- /bench:(?P=name) -->)", re.S)


def _tables(name: str) -> str:
    files = sorted((ROOT / "bench" / "results").glob(f"{name}.json"))
    if not files:
        return f"_no results yet: bench/results/{name}.json_\n"
    parts = []
    for path in files:
        table = json.loads(path.read_text()).get("table")
        if table:
            parts.append((f"`{path.name}`\n\n" if len(files) > 1 else "") + table.strip() + "\n")
    return "\n".join(parts)


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    updated = BLOCK.sub(lambda m: m.group(1) + "\n" + _tables(m.group("name")) + "\n" + m.group(4), text)
    readme.write_text(updated)
    print(f"README.md: {len(BLOCK.findall(text))} benchmark blocks refreshed")


if __name__ == "__main__":
    main()
