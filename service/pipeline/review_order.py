"""Which item a human should review next, and why; and which items to review first of all (cold start).

Items are ordered by their chance of being wrong (1 - calibrated confidence), weighted by how typical they
are (density in embedding space): a review of a typical item fixes its label and, as a few-shot neighbour
for the teacher, helps the many items like it. Random audit samples of accepted labels sit at a fixed
priority: after labels that are likely wrong, before labels that are probably right. Audits measure the
error of accepted labels without bias, so the bound can be checked and refitted; among themselves they
tie, and ties must be broken at random so that any subset reviewed is still a uniform sample.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from service.pipeline.signals import unit_rows
from service.ports import FloatArray

AUDIT_PRIORITY = 0.15
"""Equal to the priority of a typical item with a 15% chance of being wrong (an atypical one at 20%)."""
_CHUNK = 1024


def review_priority(
    *, confidence: float, density: float, audit: bool = False, cold_start_draw: float | None = None
) -> float:
    """Priority of an item waiting for review (higher first).

    ``confidence`` is the calibrated probability of the machine label (its chance of being right),
    ``density`` the item's representativeness in [0, 1] (see ``density``). Returns 1 + ``cold_start_draw``
    for an item routed in cold start (give a uniform draw in [0, 1) fixed per item), so cold-start reviews
    come first and in random order: they are the uniform sample that certifies the first threshold.
    Returns AUDIT_PRIORITY for an audit sample, else (1 - confidence) * (0.75 + 0.25 * density), in [0, 1]:
    uncertainty leads, since a review of a likely-wrong label is a fixed error; typicality breaks near-ties.
    """
    if cold_start_draw is not None:
        return 1.0 + min(max(cold_start_draw, 0.0), 1.0)
    if audit:
        return AUDIT_PRIORITY
    uncertainty = min(max(1.0 - confidence, 0.0), 1.0)
    return uncertainty * (0.75 + 0.25 * min(max(density, 0.0), 1.0))


def explain_priority(
    *, confidence: float, density: float, audit: bool = False, cold_start_draw: float | None = None
) -> str:
    """One sentence saying why the item sits where it does in the review queue."""
    if cold_start_draw is not None:
        return (
            "Cold start: picked at random, because nothing is auto-accepted until enough randomly chosen "
            "reviews certify a confidence threshold."
        )
    if audit:
        return (
            "Random audit of an accepted label: measures the error of accepted labels without bias; "
            f"ranked after labels likely wrong, before those probably right (priority {AUDIT_PRIORITY:.3f})."
        )
    typical = "typical of many items" if density >= 0.5 else "unlike most items"
    return (
        f"Machine label has a {1.0 - confidence:.0%} chance of being wrong and the item is {typical} "
        f"(density {density:.2f}); priority {review_priority(confidence=confidence, density=density):.3f}."
    )


def density(*, embeddings: npt.ArrayLike, k: int = 10) -> FloatArray:
    """Representativeness of each item: mean cosine similarity to its k nearest other items, clipped to [0, 1].

    (n,) array; 0 for an item alone in the pool.
    """
    unit = unit_rows(embeddings)
    n = unit.shape[0]
    k = min(k, n - 1)
    if k < 1:
        return np.zeros(n)
    out = np.empty(n)
    for start in range(0, n, _CHUNK):
        sims = unit[start : start + _CHUNK] @ unit.T
        rows = np.arange(sims.shape[0])
        sims[rows, rows + start] = -np.inf
        top = np.partition(-sims, k - 1, axis=1)[:, :k]
        out[start : start + _CHUNK] = -top.mean(axis=1)
    result: FloatArray = np.clip(out, 0.0, 1.0)
    return result


def diverse_seed(*, embeddings: npt.ArrayLike, k: int, seed: int) -> list[int]:
    """k item indices spread over the embedding space (k-means++ seeding on cosine distance).

    The first item is drawn uniformly; each next one with probability proportional to its squared
    cosine distance to the nearest item already picked, so clusters are covered and duplicates are not.
    Returns fewer than k indices only when the pool holds fewer than k distinct items.
    """
    unit = unit_rows(embeddings)
    n = unit.shape[0]
    rng = np.random.default_rng(seed)
    if n == 0 or k <= 0:
        return []
    picked = [int(rng.integers(n))]
    nearest = np.clip(1.0 - unit @ unit[picked[0]], 0.0, None)
    while len(picked) < min(k, n):
        weights = nearest**2
        total = weights.sum()
        if total <= 1e-12:
            break
        choice = int(rng.choice(n, p=weights / total))
        picked.append(choice)
        nearest = np.minimum(nearest, np.clip(1.0 - unit @ unit[choice], 0.0, None))
    return picked
