"""Consistency: pairs of items whose embeddings are near-identical (cosine at least a stated threshold, exact
duplicates included) but whose final labels differ. Exact search by blocks of new items against every labeled
item, so a check costs new x all, never all x all once the first has run. Pure numpy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from service.ports import FloatArray

DEFAULT_MIN_COSINE = 0.97
"""Cosine similarity of MiniLM embeddings at and above which two texts say the same thing: the same message with
a different number or name, a repeated question. Exact duplicates are at 1."""
BLOCK = 256
"""New items compared at once: a block against 100k items is a 100 MB similarity matrix."""


def near_pairs(
    *,
    new_ids: Sequence[int],
    new_vectors: FloatArray,
    ids: Sequence[int],
    vectors: FloatArray,
    min_cosine: float,
) -> list[tuple[int, int, float]]:
    """(lower id, higher id, cosine) of every pair of a new item and any item (new ones included) at least
    ``min_cosine`` alike, each pair once."""
    if not len(new_ids) or not len(ids):
        return []
    pool = _unit(vectors)
    pool_ids = np.asarray(ids)
    found: dict[tuple[int, int], float] = {}
    for start in range(0, len(new_ids), BLOCK):
        block = _unit(new_vectors[start : start + BLOCK])
        rows, cols = np.nonzero(block @ pool.T >= min_cosine)
        sims = np.einsum("ij,ij->i", block[rows], pool[cols])
        for row, col, sim in zip(rows.tolist(), cols.tolist(), sims.tolist(), strict=True):
            a, b = int(new_ids[start + row]), int(pool_ids[col])
            if a != b:
                found[(min(a, b), max(a, b))] = min(1.0, float(sim))
    return [(a, b, sim) for (a, b), sim in sorted(found.items())]


def _unit(vectors: FloatArray) -> FloatArray:
    array = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    result: FloatArray = array / np.where(norms > 0, norms, 1.0)
    return result
