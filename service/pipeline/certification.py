"""How the certificate stays valid while reviews keep arriving: which reviews certify, when a look happens, what
each look may spend of delta, and how many more reviews a target needs.

Uniform reviews (cold-start draws and audits, both drawn at random among routed items and shown blind) are split
for good by a hash of the item id: the fit half trains the labeler, the certification half only ever tests it. A
labeler is fitted on the fit half and tested once, at a look, on a certification half it never saw, so its scores
there are those of new items. Looks happen when the certification half reaches m, 2m, 4m, ... items, and look j
tests at level delta / 2^(j+1): the levels sum to delta, so the chance that any look ever certifies a threshold
whose error exceeds epsilon is at most delta (a union bound over looks, valid whatever the data did between
them). Between looks the labeler and its threshold are frozen, so what is applied is exactly what was certified.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import numpy.typing as npt

from service.pipeline.policy import clopper_pearson_upper, min_certifiable


def certifies(item_id: int) -> bool:
    """Whether a uniform review of this item belongs to the certification half (else to the fit half). Fixed per
    item, independent of its text, label and scores."""
    return hashlib.sha256(f"certify:{item_id}".encode()).digest()[0] % 2 == 1


def look_delta(look: int, *, delta: float) -> float:
    """The level look ``look`` (0, 1, ...) tests at: delta / 2^(look+1)."""
    return delta * 0.5 ** (look + 1)


def look_size(look: int, *, epsilon: float, delta: float, min_reviews: int) -> int:
    """Certification-half size at which look ``look`` happens: m * 2^look, where m is the fewest items that could
    certify epsilon at the first look's level (and at least ``min_reviews``)."""
    first = max(min_reviews, min_certifiable(epsilon=epsilon, delta=look_delta(0, delta=delta)))
    return first << look


def expected_reviews(
    *,
    confidences: npt.ArrayLike,
    correct: npt.ArrayLike,
    target_coverage: float,
    epsilon: float,
    delta: float,
    min_reviews: int,
    next_look: int,
) -> int | None:
    """Uniform reviews in all (both halves) a look needs to certify a threshold that accepts ``target_coverage`` of
    the items, judged from the certification half so far (``confidences`` of its items under the latest labeler,
    ``correct`` whether that labeler was right). None when the labeler's error above that threshold already
    reaches epsilon: more reviews of the same labeler cannot certify it.

    The error rate above the threshold is estimated with one error added (so a clean sample does not promise
    too much); the certification half must hold enough accepted items for the Clopper-Pearson bound at the
    look's level to fall under epsilon, and the fit half grows as fast.
    """
    conf = np.asarray(confidences, dtype=np.float64)
    right = np.asarray(correct, dtype=bool)
    if conf.size == 0 or not 0 < target_coverage <= 1:
        return None
    threshold = float(np.quantile(conf, 1.0 - target_coverage))
    above = conf >= threshold
    rate = (float((~right[above]).sum()) + 1.0) / (float(above.sum()) + 1.0)
    if rate >= epsilon:
        return None
    look = next_look
    while look < 30:
        size = look_size(look, epsilon=epsilon, delta=delta, min_reviews=min_reviews)
        accepted = max(1, math.floor(size * target_coverage))
        errors = math.floor(rate * accepted)
        if clopper_pearson_upper(errors=errors, n=accepted, delta=look_delta(look, delta=delta)) <= epsilon:
            return 2 * size
        look += 1
    return None
