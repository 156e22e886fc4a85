"""Signals that a machine label may be wrong, as pure functions over arrays (in the manner of cleanlab).

Probabilities are (n, k) rows over the task's labels; embeddings are (n, d) rows, L2-normalised by the
embedder (normalised again here, so raw vectors work too); labels are column indices.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from service.ports import FloatArray

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_CHUNK = 1024
"""Query rows per block of the similarity matrix, to bound memory on large pools."""


def _probs(probs: npt.ArrayLike) -> FloatArray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"probs must be (n, k) with k >= 2, got {p.shape}")
    return p


def unit_rows(embeddings: npt.ArrayLike) -> FloatArray:
    """The (n, d) rows scaled to unit length (zero rows stay zero)."""
    e = np.asarray(embeddings, dtype=np.float64)
    if e.ndim != 2:
        raise ValueError(f"embeddings must be (n, d), got {e.shape}")
    norms = np.linalg.norm(e, axis=1, keepdims=True)
    unit: FloatArray = e / np.where(norms > 0, norms, 1.0)
    return unit


def margin(*, probs: npt.ArrayLike) -> FloatArray:
    """Top probability minus the runner-up's, per row: (n,) in [0, 1]; small means the label is a toss-up."""
    p = np.sort(_probs(probs), axis=1)
    result: FloatArray = p[:, -1] - p[:, -2]
    return result


def _usable(labeled: FloatArray, skip: IntArray | None) -> int:
    """Labeled rows every query can use as neighbours: one fewer when queries skip their own row."""
    return int(labeled.shape[0]) - int(skip is not None and bool((skip >= 0).any()))


def _top_similarities(
    query: FloatArray, labeled: FloatArray, k: int, skip: IntArray | None
) -> tuple[FloatArray, IntArray]:
    """The k largest cosine similarities of each query row to the labeled rows, and their indices."""
    sims_out = np.empty((query.shape[0], k))
    index_out = np.empty((query.shape[0], k), dtype=np.int64)
    for start in range(0, query.shape[0], _CHUNK):
        sims = query[start : start + _CHUNK] @ labeled.T
        if skip is not None:
            rows = np.arange(sims.shape[0])
            own = skip[start : start + _CHUNK]
            sims[rows[own >= 0], own[own >= 0]] = -np.inf
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        sims_out[start : start + _CHUNK] = np.take_along_axis(sims, top, axis=1)
        index_out[start : start + _CHUNK] = top
    return sims_out, index_out


def neighbour_disagreement(
    *,
    query_emb: npt.ArrayLike,
    labeled_emb: npt.ArrayLike,
    labeled_labels: npt.ArrayLike,
    predicted: npt.ArrayLike,
    k: int = 5,
    self_index: npt.ArrayLike | None = None,
) -> FloatArray:
    """Share of the k nearest labeled neighbours whose label differs from the predicted one: (n,) in [0, 1].

    Neighbours are the accepted or reviewed items (``labeled_emb`` with ``labeled_labels``), nearest by
    cosine similarity; k is capped at their number. ``self_index`` (n,) gives each query's own row in the
    labeled set (-1 if none) so an item is not its own neighbour. NaN everywhere when nothing is labeled.
    """
    query = unit_rows(query_emb)
    labeled = unit_rows(labeled_emb) if np.size(labeled_emb) else np.empty((0, query.shape[1]))
    labels = np.asarray(labeled_labels, dtype=np.int64)
    pred = np.asarray(predicted, dtype=np.int64)
    skip = None if self_index is None else np.asarray(self_index, dtype=np.int64)
    usable = _usable(labeled, skip)
    if usable < 1:
        return np.full(query.shape[0], np.nan)
    _, nearest = _top_similarities(query, labeled, min(k, usable), skip)
    result: FloatArray = (labels[nearest] != pred[:, None]).mean(axis=1)
    return result


def student_disagreement(*, student_probs: npt.ArrayLike, teacher_probs: npt.ArrayLike) -> BoolArray:
    """Whether the student's top label differs from the teacher's, per row: (n,) bool."""
    student, teacher = _probs(student_probs), _probs(teacher_probs)
    if student.shape != teacher.shape:
        raise ValueError(f"student and teacher probs differ in shape: {student.shape} vs {teacher.shape}")
    result: BoolArray = student.argmax(axis=1) != teacher.argmax(axis=1)
    return result


def ood_distance(
    *, query_emb: npt.ArrayLike, labeled_emb: npt.ArrayLike, self_index: npt.ArrayLike | None = None
) -> FloatArray:
    """Cosine distance to the nearest labeled item, 1 - max similarity: (n,) in [0, 2].

    Large means nothing like the item has been labeled, so its neighbours and calibration say little.
    ``self_index`` as in ``neighbour_disagreement``. NaN everywhere when nothing is labeled.
    """
    query = unit_rows(query_emb)
    labeled = unit_rows(labeled_emb) if np.size(labeled_emb) else np.empty((0, query.shape[1]))
    skip = None if self_index is None else np.asarray(self_index, dtype=np.int64)
    if _usable(labeled, skip) < 1:
        return np.full(query.shape[0], np.nan)
    sims, _ = _top_similarities(query, labeled, 1, skip)
    result: FloatArray = 1.0 - sims[:, 0]
    return result
