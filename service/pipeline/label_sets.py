"""Multi-label items as a choice among label sets: what lets one certified filter serve both kinds.

An item of a multi-label task is wrong when its label set differs from the reviewer's, so the error the filter
bounds is that of a single choice among the 2^k subsets of the task's k labels. Each subset is a column, named by
its canonical string (``set_name``: a JSON list in the task's label order, ``[]`` for the empty set), and a row of
per-label probabilities of "present" becomes a distribution over the columns by independence (``set_probs``).
Calibration, stacking and certification then run unchanged on those columns: a stack's weight tempers every
label's log-odds at once, and its confidence is the probability of the whole set, calibrated on reviews of whole
sets, never a product of uncalibrated per-label scores.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from service.pipeline.metrics import ClassificationReport, ClassScores, class_scores
from service.ports import FloatArray

IntArray = npt.NDArray[np.int64]

MAX_LABELS = 8
"""Labels a multi-label task may have: its 2^8 = 256 label sets are columns of every score row."""
_FLOOR = 1e-6


def set_name(present: Iterable[str], labels: Sequence[str]) -> str:
    """The canonical name of a label set: its members in the task's order, as a JSON list.

    Raises ValueError for a label the task does not have or one given twice."""
    members = list(present)
    unknown = sorted({label for label in members if label not in labels})
    if unknown:
        raise ValueError(f"unknown label(s) {', '.join(map(repr, unknown))}; the task's labels are {list(labels)}")
    if len(set(members)) != len(members):
        raise ValueError(f"a label is given twice in {members}")
    return json.dumps([label for label in labels if label in members])


def members(name: str, labels: Sequence[str]) -> tuple[str, ...]:
    """The labels in the set named ``name`` (a JSON list, in any order), in the task's order."""
    return tuple(json.loads(set_name(_parsed(name), labels)))


def canonical(value: object, labels: Sequence[str]) -> str:
    """The set name of a row's label value: a list of labels, or a string holding a JSON list (as CSV stores it)."""
    if isinstance(value, str):
        return set_name(members(value, labels), labels)
    if isinstance(value, (list, tuple)) and all(isinstance(label, str) for label in value):
        return set_name(value, labels)
    raise ValueError(f"{value!r} is not a list of labels")


def set_names(labels: Sequence[str]) -> tuple[str, ...]:
    """Every subset's name, column j holding the labels whose bit is set in j (label i is bit i)."""
    if not 1 <= len(labels) <= MAX_LABELS:
        raise ValueError(f"a multi-label task has 1 to {MAX_LABELS} labels, not {len(labels)}")
    return tuple(
        set_name([label for i, label in enumerate(labels) if j >> i & 1], labels) for j in range(1 << len(labels))
    )


def _bits(k: int) -> npt.NDArray[np.bool_]:
    """(2^k, k): whether label i is in the set of column j."""
    columns = np.arange(1 << k)[:, None]
    bits: npt.NDArray[np.bool_] = (columns >> np.arange(k)[None, :] & 1).astype(bool)
    return bits


def label_count(columns: int) -> int:
    """k, from the 2^k columns of a label-set distribution."""
    k = int(columns).bit_length() - 1
    if k < 1 or 1 << k != columns:
        raise ValueError(f"{columns} columns are not the subsets of any set of labels")
    return k


def set_probs(present: npt.ArrayLike) -> FloatArray:
    """(n, 2^k) label-set distribution from (n, k) independent probabilities that each label is present."""
    p = np.clip(np.asarray(present, dtype=np.float64), _FLOOR, 1 - _FLOOR)
    bits = _bits(p.shape[1])
    logs = np.log(p) @ bits.T + np.log1p(-p) @ (~bits).T
    probs: FloatArray = np.exp(logs)
    probs /= probs.sum(axis=1, keepdims=True)
    return probs


def presence(sets: npt.ArrayLike) -> FloatArray:
    """(n, k) probability that each label is present, from an (n, 2^k) label-set distribution."""
    p = np.asarray(sets, dtype=np.float64)
    marginal: FloatArray = p @ _bits(label_count(p.shape[1])).astype(np.float64)
    return marginal


def indicators(columns: npt.ArrayLike, k: int) -> npt.NDArray[np.bool_]:
    """(n, k) membership of each label in the sets at column indices (n,)."""
    index = np.asarray(columns, dtype=np.int64)
    result: npt.NDArray[np.bool_] = _bits(k)[index]
    return result


def presence_from_scores(logliks: npt.ArrayLike) -> FloatArray:
    """(n, k) probability of "present" per label from the teacher's (n, 2k) log-likelihoods of each label's
    (present, absent) answers, in that order per label."""
    scores = np.asarray(logliks, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] % 2:
        raise ValueError(f"expected (n, 2k) answer scores, got shape {scores.shape}")
    yes, no = scores[:, 0::2], scores[:, 1::2]
    result: FloatArray = 1.0 / (1.0 + np.exp(np.clip(no - yes, -500, 500)))
    return result


def micro_f1(predicted: npt.ArrayLike, gold: npt.ArrayLike, k: int) -> float:
    """Micro-averaged F1 of predicted label sets against gold, both column indices (n,); 1.0 when both are empty
    everywhere."""
    pred, true = indicators(predicted, k), indicators(gold, k)
    hits = int((pred & true).sum())
    claimed, actual = int(pred.sum()), int(true.sum())
    if claimed + actual == 0:
        return 1.0
    return 2 * hits / (claimed + actual)


def macro_f1(predicted: npt.ArrayLike, gold: npt.ArrayLike, k: int) -> float:
    """Mean over labels of each label's F1 (a label absent from both counts as 1.0)."""
    pred, true = indicators(predicted, k), indicators(gold, k)
    scores = []
    for i in range(k):
        hits, total = int((pred[:, i] & true[:, i]).sum()), int(pred[:, i].sum() + true[:, i].sum())
        scores.append(1.0 if total == 0 else 2 * hits / total)
    return float(np.mean(scores))


def set_report(*, y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> ClassificationReport:
    """A multi-label classification report from gold and predicted set names: ``per_class`` scores each label's
    presence, ``macro_f1`` is their mean F1, ``micro_f1`` the F1 over every (item, label) decision and
    ``accuracy`` the share of items whose whole set is right (the error the filter bounds)."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} items but y_pred has {len(y_pred)}")
    index = {name: j for j, name in enumerate(set_names(labels))}
    truth = indicators([index[set_name(members(name, labels), labels)] for name in y_true], len(labels))
    predicted = indicators([index[set_name(members(name, labels), labels)] for name in y_pred], len(labels))
    per_class: dict[str, ClassScores] = {
        label: class_scores(
            hits=int((truth[:, i] & predicted[:, i]).sum()),
            true=int(truth[:, i].sum()),
            predicted=int(predicted[:, i].sum()),
        )
        for i, label in enumerate(labels)
    }
    hits, claimed, actual = int((truth & predicted).sum()), int(predicted.sum()), int(truth.sum())
    return ClassificationReport(
        per_class=per_class,
        macro_f1=float(np.mean([s["f1"] for s in per_class.values()])),
        accuracy=float((truth == predicted).all(axis=1).mean()) if len(truth) else 0.0,
        n=len(truth),
        micro_f1=2 * hits / (claimed + actual) if claimed + actual else 1.0,
    )


def labels_in(names: Iterable[str]) -> tuple[str, ...]:
    """Every label that occurs in the label sets ``names`` (JSON lists), sorted: a data set's label names."""
    found: set[str] = set()
    for name in names:
        found.update(_parsed(name))
    return tuple(sorted(found))


def _parsed(name: str) -> list[str]:
    try:
        parsed = json.loads(name)
    except json.JSONDecodeError:
        raise ValueError(f"{name!r} is not a JSON list of labels") from None
    if not isinstance(parsed, list) or not all(isinstance(label, str) for label in parsed):
        raise ValueError(f"{name!r} is not a JSON list of labels")
    return parsed
