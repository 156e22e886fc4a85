"""What a label is, per task kind: the one place that knows whether a label is a single choice or a set.

Every stage after the teacher works on score columns: the task's labels for ``single_label``, its label sets for
``multi_label`` (pipeline/label_sets.py), so that the machine's label is the likeliest column and its confidence
that column's probability for both. A new kind (spans) adds its branch here and in the stages that read ``kind``,
instead of a hunt through ``argmax`` calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from service.pipeline import label_sets, span_sets
from service.pipeline.calibration import normalize
from service.pipeline.metrics import ClassificationReport, classification_report
from service.pipeline.probe import AnyProbe, fit_probe, fit_set_probe
from service.ports import FloatArray, TaskDef, TaskKind

IntArray = npt.NDArray[np.int64]
ProbeFit = Callable[..., AnyProbe | None]
"""fit(inputs=ProbeInput, labels=column indices, n_labels=columns) -> a probe, or None with too few labels."""


KINDS: tuple[TaskKind, ...] = ("single_label", "multi_label", "spans")


def kind_named(value: object) -> TaskKind:
    """The kind a stored or saved name stands for; a ValueError for one this version does not know."""
    for kind in KINDS:
        if value == kind:
            return kind
    raise ValueError(f"task kind {value!r} is not supported by this version")


def columns(kind: TaskKind, labels: Sequence[str]) -> tuple[str, ...]:
    """What an item's label may be, naming the columns of the task's score rows: one of its ``labels``, or for a
    multi-label task one of its label sets, by its canonical name. A spans task's answers are not columns: a
    ValueError."""
    if kind == "spans":
        raise ValueError("a spans task's span sets are not score columns")
    if kind == "multi_label":
        return label_sets.set_names(labels)
    return tuple(labels)


Shown = str | list[str] | list[dict[str, int | str]]
"""A label as users read and write it: a label, a list of labels, or a list of {start, end, label} spans."""


def shown(kind: TaskKind, labels: Sequence[str], label: str) -> Shown:
    """A stored label as users read it: the label, the list of a label set's labels, or a span set's spans."""
    if kind == "spans":
        spans: list[dict[str, int | str]] = [
            {"start": s.start, "end": s.end, "label": s.label} for s in span_sets.members(label)
        ]
        return spans
    if kind == "multi_label":
        return list(label_sets.members(label, labels))
    return label


def label_probs(kind: TaskKind, labels: Sequence[str], probs: npt.ArrayLike) -> dict[str, float]:
    """Per label, from one row of column probabilities: the probability that it is right, or for a multi-label task
    that it applies; none for a spans task (its one column is the set's confidence)."""
    if kind == "spans":
        return {}
    row = np.asarray(probs, dtype=np.float64)
    if kind == "multi_label":
        row = label_sets.presence(row[None, :])[0]
    return {label: float(p) for label, p in zip(labels, row, strict=True)}


def continuations(task: TaskDef) -> tuple[str, ...]:
    """What the teacher scores after the prompt. single_label: " <label>" per label; multi_label: each label's
    "<label>: yes" and "<label>: no" answer lines (the prompt ends at the assistant's turn; each line starts with
    its newline, as each label starts with its space)."""
    if task.kind == "multi_label":
        return tuple(f"\n{name}: {answer}" for name in task.label_names for answer in ("yes", "no"))
    return tuple(f" {name}" for name in task.label_names)


def column_probs(task: TaskDef, logliks: npt.ArrayLike) -> FloatArray:
    """(n, columns) probabilities from the teacher's (n, continuations) log-likelihoods."""
    if task.kind == "multi_label":
        return label_sets.set_probs(label_sets.presence_from_scores(logliks))
    return normalize(np.asarray(logliks, dtype=np.float64))


def report(
    kind: TaskKind, *, y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]
) -> ClassificationReport:
    """Gold scores of predicted labels (stored label strings): per class; per label of a multi-label task with
    its micro-F1 and exact-set accuracy; per label of a spans task by exact entity match, with its micro-F1."""
    if kind == "spans":
        return span_sets.entity_report(y_true=y_true, y_pred=y_pred, labels=labels)
    if kind == "multi_label":
        return label_sets.set_report(y_true=y_true, y_pred=y_pred, labels=labels)
    return classification_report(y_true=y_true, y_pred=y_pred, labels=labels)


def probe_fitter(kind: TaskKind) -> ProbeFit:
    """How the embedding probe is fitted: multinomial over labels, or one-vs-rest read over label sets."""
    return fit_set_probe if kind == "multi_label" else fit_probe


def machine_labels(*, probs: npt.ArrayLike, kind: TaskKind) -> tuple[IntArray, FloatArray]:
    """The machine's label per row of (n, columns) probabilities, as column indices (n,), and its confidence (n,):
    the probability that the label is right. For both kinds the likeliest column: the top label, or the likeliest
    whole set (with independent labels, each label present when its probability is over one half)."""
    if kind not in KINDS:
        raise ValueError(f"unknown task kind {kind!r}")
    p = np.asarray(probs, dtype=np.float64)
    labels: IntArray = p.argmax(axis=1).astype(np.int64)
    confidence: FloatArray = p.max(axis=1)
    return labels, confidence
