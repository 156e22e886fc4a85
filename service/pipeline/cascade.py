"""The cascade: the promoted student labels what it is sure of, the teacher gets the rest.

Pure functions over arrays: the split, the student's confidence threshold fitted on human gold, the
promotion gate, and per-level shares and accuracies for reports.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypedDict

import numpy as np
import numpy.typing as npt

from service.pipeline.policy import Policy, clopper_pearson_upper, min_certifiable
from service.ports import FloatArray, TaskKind

IndexArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class CascadeSplit:
    student: IndexArray
    """Rows the student labels (its top probability is at least the threshold)."""
    escalate: IndexArray
    """Rows sent up to the teacher."""


@dataclass(frozen=True)
class StudentThreshold:
    threshold: float | None
    """Lowest top probability the student may label alone; None when none is certified."""
    error_bound: float | None
    """Clopper-Pearson upper bound (level 1 - delta/2 when two scans ran, see fit_student_threshold) on the error
    of gold items at or above the threshold."""
    accepted: int
    """Gold items at or above the threshold."""


class LevelReport(TypedDict):
    items: int
    share: float
    accuracy: float | None
    """Against gold, over the level's items that have gold; None where none has."""


UNCERTIFIED_THRESHOLD = 1.01
"""The threshold stored for a student whose threshold could not be certified: no probability reaches it."""


def split_by_confidence(*, probs: npt.ArrayLike, threshold: float | None) -> CascadeSplit:
    """Split rows of ``probs`` (n, k) by the student's top probability; a None threshold escalates all."""
    p = np.asarray(probs, dtype=np.float64)
    n = p.shape[0]
    if threshold is None or n == 0:
        return CascadeSplit(student=np.zeros(0, dtype=np.int64), escalate=np.arange(n, dtype=np.int64))
    sure = p.max(axis=1) >= threshold
    return CascadeSplit(student=np.flatnonzero(sure).astype(np.int64), escalate=np.flatnonzero(~sure).astype(np.int64))


def fit_student_threshold(
    *, confidences: npt.ArrayLike, correct: npt.ArrayLike, epsilon: float, delta: float = 0.1, min_accepted: int = 30
) -> StudentThreshold:
    """The lowest threshold on the student's confidence whose accepted gold error is provably <= ``epsilon``.

    ``confidences`` are the student's top probabilities on held-out human gold that is a sample of what it will
    label (uniform draws, not items picked for looking wrong) and ``correct`` whether its top label was right.
    Candidates are the observed confidences, tested from the highest down (fixed-sequence testing, so picking
    among many thresholds keeps its level); a scan stops at the first candidate whose Clopper-Pearson upper bound
    exceeds ``epsilon``. Two scans run, each at level ``delta``/2 (so both together hold at 1 - ``delta``): one
    starts where enough gold is accepted to certify ``epsilon`` at all (and at least ``min_accepted``), so a small
    sure slice can pass; the other starts where half the gold is accepted, so that one confidently wrong item
    among the first few does not end the search (the demo's int8 student, wrong on 2 of 100 sampled gold items
    but the first at rank 24 with confidence 0.998, certified nothing with the first scan alone). The lower of
    the two thresholds wins. With too little gold for the two to start apart (under about 60 items at epsilon 0.1),
    one scan runs at the full level. Returns a `StudentThreshold` (threshold None when nothing passes).
    """
    conf = np.asarray(confidences, dtype=np.float64)
    right = np.asarray(correct, dtype=bool)
    if conf.shape != right.shape:
        raise ValueError(f"confidences {conf.shape} and correct {right.shape} differ in shape")
    order = np.argsort(-conf, kind="stable")
    conf, errors = conf[order], np.cumsum(~right[order])
    half = math.ceil(conf.size / 2)
    fewest = max(min_accepted, min_certifiable(epsilon=epsilon, delta=delta / 2))
    if half <= fewest:
        # Too little gold for the scans to start apart: one scan at the full level.
        start = max(min_accepted, min_certifiable(epsilon=epsilon, delta=delta))
        return _scan(conf, errors, start=start, epsilon=epsilon, delta=delta)
    scans = [_scan(conf, errors, start=start, epsilon=epsilon, delta=delta / 2) for start in (fewest, half)]
    return max(scans, key=lambda found: found.accepted)


def _scan(
    conf: FloatArray, errors: npt.NDArray[np.int64], *, start: int, epsilon: float, delta: float
) -> StudentThreshold:
    """One fixed sequence over ``conf`` (sorted high to low), from the first candidate accepting ``start`` items."""
    best = StudentThreshold(threshold=None, error_bound=None, accepted=0)
    for candidate in np.unique(conf)[::-1]:
        accepted = int(np.searchsorted(-conf, -candidate, side="right"))
        if accepted < start:
            continue
        bound = clopper_pearson_upper(errors=int(errors[accepted - 1]), n=accepted, delta=delta)
        if bound > epsilon:
            break
        best = StudentThreshold(threshold=float(candidate), error_bound=bound, accepted=accepted)
    return best


def student_policy(teacher: Policy, metrics: Mapping[str, Any]) -> Policy:
    """How the promoted student's own labels are routed: its threshold certified on held-out gold at training time
    (``metrics`` of the student version) replaces the teacher's, which was certified on the teacher's labels and
    says nothing about the student's; the task's audit share and veto limits stay. A student without a certified
    threshold (stored as above 1) has no label of its own accepted."""
    threshold = float(metrics.get("threshold", UNCERTIFIED_THRESHOLD))
    bound = metrics.get("threshold_error_bound")
    return replace(
        teacher,
        threshold=threshold,
        error_bound=float(bound) if bound is not None else None,
        fitted_on=int(metrics.get("threshold_certified_on", metrics.get("gold_examples", 0))),
    )


MIN_TEACHER_GOLD = 10
"""Gold items the teacher must have answered before a spans cascade believes its report over the tagger's."""


def escalates(kind: TaskKind, metrics: Mapping[str, Any] | None) -> bool:
    """Whether what the promoted student (with these stored metrics; None: no student) is unsure of goes to the
    teacher. Always, but in a spans task whose teacher, on at least MIN_TEACHER_GOLD of the tagger's gold items,
    scored below the tagger by the gate's F1: there the teacher's proposal would replace the tagger's set as the
    item's suggestion for review, a worse one, at the teacher's cost (WNUT 17, 250 posts: SmolLM2's entity F1 0.11,
    a tagger's about 0.3). A text student's unsure items always go up: the teacher's scores join the stacked
    labeler rather than replace the student's."""
    if kind != "spans" or metrics is None or int(metrics.get("teacher_gold_examples", 0)) < MIN_TEACHER_GOLD:
        return True
    metric = str(metrics.get("gate_metric", "micro_f1"))
    return gate_f1(metrics["teacher"], metric) >= gate_f1(metrics["student"], metric)


def gate_f1(report: Mapping[str, Any], metric: str) -> float:
    """The F1 a gold report gives the promotion gate: ``micro_f1`` (0 when no span was predicted or true) or
    ``macro_f1``."""
    return float(report.get("micro_f1", 0.0) if metric == "micro_f1" else report["macro_f1"])


def promotion_gate(student_macro_f1: float, teacher_macro_f1: float, margin: float) -> bool:
    """Whether the student may be promoted: its gold macro-F1 is at least the teacher's minus ``margin``."""
    return student_macro_f1 >= teacher_macro_f1 - margin


def level_report(
    *, handled_by: Sequence[str], y_pred: Sequence[str], y_true: Sequence[str | None]
) -> dict[str, LevelReport]:
    """Per level of the cascade (e.g. "student", "teacher", "human"): items, share of all, accuracy on gold.

    ``y_true`` holds None for items without gold; those count toward items and share but not accuracy.
    """
    if not len(handled_by) == len(y_pred) == len(y_true):
        raise ValueError("handled_by, y_pred and y_true must have the same length")
    report: dict[str, LevelReport] = {}
    for level in dict.fromkeys(handled_by):
        rows = [i for i, name in enumerate(handled_by) if name == level]
        graded = [i for i in rows if y_true[i] is not None]
        accuracy = sum(y_pred[i] == y_true[i] for i in graded) / len(graded) if graded else None
        report[level] = LevelReport(items=len(rows), share=len(rows) / len(handled_by), accuracy=accuracy)
    return report
