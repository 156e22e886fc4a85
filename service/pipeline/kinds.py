"""What the machine's label of an item is, per task kind: the one place that knows a label is a single choice.

A new kind (a set of labels, spans) adds its branch here and in the stages that read ``kind``, instead of a hunt
through ``argmax`` calls.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from service.ports import FloatArray, TaskKind

IntArray = npt.NDArray[np.int64]


def machine_labels(*, probs: npt.ArrayLike, kind: TaskKind) -> tuple[IntArray, FloatArray]:
    """The machine's label per row of (n, k) label probabilities, as column indices (n,), and its confidence (n,):
    the probability that the label is right. single_label: the top label and its probability."""
    p = np.asarray(probs, dtype=np.float64)
    if kind != "single_label":
        raise ValueError(f"unknown task kind {kind!r}")
    labels: IntArray = p.argmax(axis=1).astype(np.int64)
    confidence: FloatArray = p.max(axis=1)
    return labels, confidence
