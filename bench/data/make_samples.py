"""Write the committed samples in this folder from their sources (see README.md here): how they were drawn, so the
draw can be repeated and checked. Not run by the service or the tests; the samples are what they read.

    python bench/data/make_samples.py --goemotions DIR --wnut17 FILE
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
GOEMOTIONS_ROWS = 3000
SEED = 0


def goemotions(folder: Path) -> list[dict[str, object]]:
    """A seeded random sample of GoEmotions' test split with Ekman's grouping: a set of emotions per comment; the
    source's "neutral" (never given with another emotion) is the empty set."""
    names = (folder / "labels.txt").read_text(encoding="utf-8").split()
    with (folder / "test.tsv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    picked = sorted(random.Random(SEED).sample(range(len(rows)), GOEMOTIONS_ROWS))
    out: list[dict[str, object]] = []
    for index in picked:
        text, ids, comment = rows[index]
        labels = sorted({names[int(i)] for i in ids.split(",")} - {"neutral"})
        out.append({"id": comment, "text": text.strip(), "labels": labels})
    return out


def wnut17(conll: Path) -> list[dict[str, object]]:
    """Every sentence of WNUT 17's training split: tokens joined by single spaces, each BIO-tagged entity a span
    of character offsets into that text."""
    sentences: list[list[tuple[str, str]]] = [[]]
    for line in conll.read_text(encoding="utf-8").splitlines():
        token, _, tag = line.partition("\t")
        if not token.strip():
            sentences.append([])
        else:
            sentences[-1].append((token, tag.strip() or "O"))
    out: list[dict[str, object]] = []
    for number, tokens in enumerate(s for s in sentences if s):
        text, start = "", 0
        spans: list[dict[str, object]] = []
        open_span: dict[str, object] | None = None
        for position, (token, tag) in enumerate(tokens):
            start = len(text) + (1 if position else 0)
            text = f"{text} {token}" if position else token
            kind, _, label = tag.partition("-")
            if kind == "I" and open_span is not None and open_span["label"] == label:
                open_span["end"] = len(text)
                continue
            open_span = None
            if kind in ("B", "I"):
                open_span = {"start": start, "end": len(text), "label": label}
                spans.append(open_span)
        for span in spans:
            span["text"] = text[int(str(span["start"])) : int(str(span["end"]))]
        out.append({"id": f"wnut17-train-{number}", "text": text, "spans": spans})
    return out


def _write(rows: list[dict[str, object]], name: str) -> None:
    with (HERE / name).open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goemotions", type=Path, required=True, help="folder with Ekman's test.tsv and labels.txt")
    parser.add_argument("--wnut17", type=Path, required=True, help="wnut17train.conll")
    args = parser.parse_args()
    _write(goemotions(args.goemotions), "goemotions_ekman.jsonl")
    _write(wnut17(args.wnut17), "wnut17_train.jsonl")


if __name__ == "__main__":
    main()
