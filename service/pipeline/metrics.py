"""Classification quality on gold labels: per-class scores, macro-F1, accuracy, calibration error.

Pure numpy, keyword-only arguments over arrays, in the manner of cleanlab's scorers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NotRequired, TypedDict

import numpy as np
import numpy.typing as npt


class ClassScores(TypedDict):
    precision: float
    recall: float
    f1: float
    support: int


class ClassificationReport(TypedDict):
    per_class: dict[str, ClassScores]
    macro_f1: float
    accuracy: float
    n: int
    micro_f1: NotRequired[float]
    """Multi-label reports only (label_sets.set_report): F1 over every (item, label) decision."""


def _ratio(numerator: int, denominator: int) -> float:
    # A class never predicted (or never present) scores 0, as scikit-learn's zero_division=0 does.
    return numerator / denominator if denominator else 0.0


def class_scores(*, hits: int, true: int, predicted: int) -> ClassScores:
    """One class's precision, recall and F1 from its counts of hits, true items and predicted items."""
    precision, recall = _ratio(hits, predicted), _ratio(hits, true)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return ClassScores(precision=precision, recall=recall, f1=f1, support=true)


def classification_report(
    *, y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]
) -> ClassificationReport:
    """Per-class precision, recall, F1 and support, their macro-F1 and the accuracy.

    Returns a dict: ``per_class`` maps each of ``labels`` (in order) to its scores; ``macro_f1`` is the
    unweighted mean F1 over all of ``labels``, including those with no support; ``accuracy`` is the share of
    items whose prediction equals the truth; ``n`` is the number of items. A prediction outside ``labels``
    counts as wrong. Empty input gives zeros.
    """
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} items but y_pred has {len(y_pred)}")
    truth = np.asarray(list(y_true), dtype=object)
    predicted = np.asarray(list(y_pred), dtype=object)
    per_class: dict[str, ClassScores] = {}
    for label in labels:
        is_true = truth == label
        is_pred = predicted == label
        per_class[label] = class_scores(
            hits=int(np.sum(is_true & is_pred)), true=int(np.sum(is_true)), predicted=int(np.sum(is_pred))
        )
    macro_f1 = float(np.mean([s["f1"] for s in per_class.values()])) if per_class else 0.0
    accuracy = float(np.mean(truth == predicted)) if len(truth) else 0.0
    return ClassificationReport(per_class=per_class, macro_f1=macro_f1, accuracy=accuracy, n=len(truth))


def expected_calibration_error(*, probs: npt.ArrayLike, y_true: npt.ArrayLike, n_bins: int = 10) -> float:
    """Expected calibration error of the top-label confidence.

    ``probs`` is (n, k), rows summing to 1; ``y_true`` holds the true column index of each row. Confidences
    are cut into ``n_bins`` equal-width bins over [0, 1]; returns the support-weighted mean over bins of
    |accuracy - mean confidence|, a number in [0, 1] (0 for empty input).
    """
    p = np.asarray(probs, dtype=np.float64)
    truth = np.asarray(y_true, dtype=np.int64)
    if p.ndim != 2 or truth.shape != (p.shape[0],):
        raise ValueError(f"probs must be (n, k) and y_true (n,), got {p.shape} and {truth.shape}")
    return confidence_calibration_error(confidence=p.max(axis=1), correct=p.argmax(axis=1) == truth, n_bins=n_bins)


def confidence_calibration_error(*, confidence: npt.ArrayLike, correct: npt.ArrayLike, n_bins: int = 10) -> float:
    """Expected calibration error of confidences in answers that are right or wrong whole (a top label, a span
    set): the support-weighted mean over ``n_bins`` equal-width bins of |share right - mean confidence|."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if confidence.shape[0] == 0:
        return 0.0
    # Bin i holds confidences in (edge_i, edge_i+1]; a confidence of exactly 0 joins the first bin.
    bins = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    error = 0.0
    for b in range(n_bins):
        in_bin = bins == b
        if in_bin.any():
            error += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(error)
