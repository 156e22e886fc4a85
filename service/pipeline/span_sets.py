"""Entity-span items: a span set per text, checked against the text and stored under one canonical name.

An item of a ``spans`` task is a set of non-overlapping character spans ``[start, end)``, each with one of the
task's labels (an empty set is a valid answer). It is stored, like a multi-label set, as a canonical string: the
JSON list of ``[start, end, label]`` in text order, so that two answers are the same exactly when their strings
are, which is the per-item error the filter bounds. Quality is entity-level and exact-match, as seqeval counts
it: a predicted span is a hit only when its start, end and label all equal a true span's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise
from typing import NamedTuple

from service.pipeline.metrics import ClassificationReport, ClassScores, class_scores


class Span(NamedTuple):
    start: int
    end: int
    label: str


def set_name(spans: Iterable[Span]) -> str:
    """The canonical name of a checked span set: ``[[start, end, label], ...]`` in text order."""
    return json.dumps([list(span) for span in sorted(spans)], ensure_ascii=False)


def members(name: str) -> tuple[Span, ...]:
    """The spans of a stored span set, in text order."""
    return tuple(Span(int(start), int(end), str(label)) for start, end, label in json.loads(name))


def shown(name: str, text: str) -> list[dict[str, int | str]]:
    """A stored span set as users read and write it: ``{"start", "end", "label", "text"}`` per span."""
    return [{"start": s.start, "end": s.end, "label": s.label, "text": text[s.start : s.end]} for s in members(name)]


def answer_json(name: str, text: str) -> str:
    """A span set as the teacher writes its answer: ``{"entities": [{"text", "label"}, ...]}`` in reading order."""
    entities = [{"text": text[s.start : s.end], "label": s.label} for s in members(name)]
    return json.dumps({"entities": entities}, ensure_ascii=False)


def canonical(value: object, *, text: str, labels: Sequence[str]) -> str:
    """The stored name of a given span set: a list of ``{"start", "end", "label"[, "text"]}`` objects (or a string
    holding its JSON, as CSV stores it), checked against ``text``.

    Raises ValueError, naming the span, when a span is not an object with integer offsets, is empty or out of the
    text's range, has a label the task lacks, gives a ``text`` that differs from the text at its offsets, or
    overlaps another."""
    if isinstance(value, str):
        given = value
        try:
            value = json.loads(given)
        except json.JSONDecodeError:
            raise ValueError(f"{given[:60]!r} is not a JSON list of spans") from None
    if not isinstance(value, list):
        raise ValueError(f"spans must be a list of {{start, end, label}} objects, not {type(value).__name__}")
    spans = [_checked(index, given, text, labels) for index, given in enumerate(value)]
    ordered = sorted(spans)
    for before, after in pairwise(ordered):
        if after.start < before.end:
            raise ValueError(f"spans {_named(before)} and {_named(after)} overlap")
    return set_name(ordered)


def _checked(index: int, given: object, text: str, labels: Sequence[str]) -> Span:
    if not isinstance(given, Mapping):
        raise ValueError(f"span {index} is not an object with start, end and label")
    extra = sorted(set(given) - {"start", "end", "label", "text"})
    if extra:
        raise ValueError(f"span {index} has unknown key(s) {', '.join(map(str, extra))}")
    start, end, label = given.get("start"), given.get("end"), given.get("label")
    if not isinstance(start, int) or not isinstance(end, int) or isinstance(start, bool) or isinstance(end, bool):
        raise ValueError(f"span {index} needs integer start and end, got {start!r} and {end!r}")
    if not 0 <= start < end <= len(text):
        raise ValueError(f"span {index} [{start}, {end}) is empty or outside the text (length {len(text)})")
    if label not in labels:
        raise ValueError(f"span {index} has label {label!r}; the task's labels are {list(labels)}")
    quoted = given.get("text")
    if quoted is not None and quoted != text[start:end]:
        raise ValueError(f"span {index} gives text {quoted!r} but the text at [{start}, {end}) is {text[start:end]!r}")
    return Span(start, end, str(label))


def _named(span: Span) -> str:
    return f"[{span.start}, {span.end}) {span.label}"


def entity_report(*, y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> ClassificationReport:
    """Entity-level exact-match scores of predicted span sets (stored names) against true ones: per label precision,
    recall, F1 and support (true spans), ``micro_f1`` over all spans (seqeval's headline F1), ``macro_f1`` over the
    labels, and ``accuracy`` the share of items whose whole span set is right."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} items but y_pred has {len(y_pred)}")
    hits = dict.fromkeys(labels, 0)
    true = dict.fromkeys(labels, 0)
    said = dict.fromkeys(labels, 0)
    exact = 0
    for truth_name, predicted_name in zip(y_true, y_pred, strict=True):
        truth, predicted = set(members(truth_name)), set(members(predicted_name))
        exact += truth == predicted
        for span in truth:
            true[span.label] = true.get(span.label, 0) + 1
        for span in predicted:
            said[span.label] = said.get(span.label, 0) + 1
            hits[span.label] = hits.get(span.label, 0) + (span in truth)
    per_class: dict[str, ClassScores] = {
        label: class_scores(hits=hits[label], true=true[label], predicted=said[label]) for label in labels
    }
    micro = class_scores(hits=sum(hits.values()), true=sum(true.values()), predicted=sum(said.values()))
    return ClassificationReport(
        per_class=per_class,
        macro_f1=sum(s["f1"] for s in per_class.values()) / len(per_class) if per_class else 0.0,
        accuracy=exact / len(y_true) if y_true else 0.0,
        n=len(y_true),
        micro_f1=micro["f1"],
    )


def span_f1(first: str, second: str) -> float:
    """Agreement of two span sets of one text: F1 of one against the other (symmetric); 1 when both are empty."""
    a, b = set(members(first)), set(members(second))
    if not a and not b:
        return 1.0
    return 2 * len(a & b) / (len(a) + len(b))
