"""Which item a human should review next, and why.

Items are ordered by their chance of being wrong, weighted by how typical they are (density in embedding
space): a review of a likely-wrong label is a fixed error, and a review of a typical item, as a few-shot
neighbour for the teacher, helps the many items like it. The chance of being wrong combines the calibrated
confidence with a linear probe on the labeled items' embeddings (`wrong_chance`): where the teacher and
the probe disagree, one of them is wrong. Random audit samples of accepted labels sit at a fixed
priority: after labels that are likely wrong, before labels that are probably right. Audits measure the
error of accepted labels without bias, so the bound can be checked and refitted; among themselves they
tie, and ties must be broken at random so that any subset reviewed is still a uniform sample.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from service.pipeline.signals import unit_rows
from service.ports import FloatArray

COLD_START_PRIORITY = 1.0
"""Cold-start draws rank from here up (1 + a uniform draw): above every other item."""
AUDIT_PRIORITY = 0.15
"""Equal to the priority of a typical item with a 15% chance of being wrong (an atypical one at 20%)."""
RERANK_EVERY = 10
"""Human labels after which the waiting queue is ranked again by the labeler refitted on every human label (the
rerank_queue job): each review teaches the probe, and the next ones should go where it is now least sure."""
_CHUNK = 1024


def wrong_chance(*, probs: npt.ArrayLike, predicted: npt.ArrayLike, support: npt.ArrayLike | None) -> FloatArray:
    """Each machine label's chance of being wrong: (n,) in [0, 1].

    ``probs`` are the calibrated (n, k) probabilities behind the machine labels ``predicted`` (n,); ``support``
    (n, k) is a second opinion drawn from other evidence, the embedding probe on the labeled items
    (``service.pipeline.probe``), or None before there is one (then 1 - the predicted label's probability).
    The two are combined as independent (naive Bayes): the posterior is their normalised product. Where they
    disagree the chance can pass 0.5: the machine label is more likely wrong than right.
    """
    p = np.asarray(probs, dtype=np.float64)
    rows, labels = np.arange(p.shape[0]), np.asarray(predicted, dtype=np.int64)
    if support is not None:
        p = p * np.asarray(support, dtype=np.float64)
        p = p / np.clip(p.sum(axis=1, keepdims=True), 1e-300, None)
    result: FloatArray = np.clip(1.0 - p[rows, labels], 0.0, 1.0)
    return result


def review_priority(
    *, wrong_chance: float, density: float, audit: bool = False, cold_start_draw: float | None = None
) -> float:
    """Priority of an item waiting for review (higher first).

    ``wrong_chance`` is the machine label's chance of being wrong (see ``wrong_chance``), ``density`` the
    item's representativeness in [0, 1] (see ``density``). Returns 1 + ``cold_start_draw`` for an item routed
    in cold start (give a uniform draw in [0, 1) fixed per item), so cold-start reviews come first and in
    random order: they are the uniform sample that certifies the first threshold. Returns AUDIT_PRIORITY for
    an audit sample, else wrong_chance * (0.75 + 0.25 * density), in [0, 1]: uncertainty leads, typicality
    breaks near-ties.
    """
    if cold_start_draw is not None:
        return COLD_START_PRIORITY + min(max(cold_start_draw, 0.0), 1.0)
    if audit:
        return AUDIT_PRIORITY
    uncertainty = min(max(wrong_chance, 0.0), 1.0)
    return uncertainty * (0.75 + 0.25 * min(max(density, 0.0), 1.0))


def explain_priority(
    *,
    wrong_chance: float,
    density: float,
    audit: bool = False,
    cold_start_draw: float | None = None,
    probed: bool = False,
) -> str:
    """One sentence saying why the item sits where it does in the review queue; ``probed`` says whether the
    embedding probe was part of ``wrong_chance``."""
    if cold_start_draw is not None:
        return (
            "Cold start: picked at random, because nothing is auto-accepted until enough randomly chosen "
            "reviews certify a confidence threshold."
        )
    if audit:
        return (
            "Random audit, shown without the machine's answer: a uniform draw among labeled items that measures and "
            "certifies the error of machine labels without bias; "
            f"ranked after labels likely wrong, before those probably right (priority {AUDIT_PRIORITY:.3f})."
        )
    typical = "typical of many items" if density >= 0.5 else "unlike most items"
    source = "its confidence and a probe on the labeled items' embeddings" if probed else "its confidence"
    return (
        f"Machine label has a {wrong_chance:.0%} chance of being wrong (by {source}) and the item is {typical} "
        f"(density {density:.2f}); "
        f"priority {review_priority(wrong_chance=wrong_chance, density=density):.3f}."
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
