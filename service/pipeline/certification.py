"""How the certificate stays valid while reviews keep arriving: which reviews test a labeler, when a look happens,
what each look may spend of delta, and how many more reviews a target needs.

A labeler is fitted once (a *candidate*) on every human label there is at that moment, then frozen. It is tested
only on uniform reviews (cold-start draws and audits, drawn at random among routed items and shown blind) whose
first human label came after it was fitted: its fresh slice. Those items were drawn independently of it and it
never saw their labels, so its confidences there are those of new items. Candidate j is tested once, when its
slice reaches m * 2^j items, at level delta / 2^(j+1); if that look certifies nothing, candidate j+1 is fitted on
every label, the slice included, and waits for a slice of its own. The levels sum to delta, so the chance that
any look ever certifies a threshold whose error exceeds epsilon is at most delta (a union bound over looks, valid
whatever the data did between them). A certified candidate is applied exactly as it was tested. A task with a
review budget knows which look is its last (the budget pays for no look after it): that look takes all of delta
that is left, on at most the reviews the budget has left (``plan_look``).

A candidate's slice holds only the uniform reviews whose confidence under it reaches its *floor* (``slice_floor``,
fixed when it is fitted, from its cross-fitted errors on what it was fitted on): the lowest confidence it could
still be certified at. Drawn uniformly within that stratum, they are a uniform sample of every threshold at or
above the floor, and the look tests only those; items below the floor, which it could never accept, cost no
slice review and wait for review by their chance of being wrong. Where the candidate errs little everywhere the
floor is its lowest confidence and the slice is the whole stream.

Every label goes into the next candidate (a hash split would keep half of them out of every fit), and a look
tests the best labeler there was when its slice began. m is the fewest reviews in which a clean labeler could
certify the target coverage at the first look's level: fewer could not certify it whatever they showed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from service.pipeline.policy import clopper_pearson_upper, min_certifiable

DEFAULT_COVERAGE = 0.5
"""The coverage looks are sized for when a task states no target."""
SURE_MARGIN = 0.75
"""A target is in a candidate's reach where its cross-fitted error rate stays below this share of epsilon: a rate
just under epsilon takes far more reviews to show than a budget holds. On TREC (target 30%, 20 seeds) the gate at
epsilon itself let some seeds draw slices that 18 in 20 failed, for 2 to 3.5 points of final accuracy; at 0.75 none
drew. On SMS Spam it costs one seed its certificate at a 10% budget (coverage 81.8% -> 78.6%)."""
MIN_FLOOR_SHARE = 0.02
"""A candidate whose certifiable share is estimated below this has no look: its slice would buy almost nothing."""


@dataclass(frozen=True)
class SliceFloor:
    """Where a candidate's slice starts: the lowest confidence it could be certified at, and the share of the items
    it was fitted on (cross-fitted) at or above it."""

    floor: float
    share: float
    sure_share: float
    """The share down to which its error rate stays below SURE_MARGIN of epsilon: where a look can expect to
    certify."""

    def reaches(self, target_coverage: float | None) -> bool:
        """Whether the task's target is in its reach (any coverage is, for a task without one): a target says what
        coverage is worth reviews, so a candidate short of it gets no slice, and the budget goes to likely errors."""
        return target_coverage is None or self.sure_share >= target_coverage

    def aim(self, target_coverage: float | None) -> float:
        """The coverage its look aims at: the task's target (DEFAULT_COVERAGE without one), or all it can reach if
        less (a task without a review budget keeps drawing for a candidate short of its target)."""
        return min(aimed_coverage(target_coverage), self.share)

    def accepted_share(self, target_coverage: float | None) -> float:
        """The share of its slice that the aimed coverage accepts (what its look is sized and started for)."""
        return self.aim(target_coverage) / self.share


def slice_floor(*, confidences: npt.ArrayLike, correct: npt.ArrayLike, epsilon: float) -> SliceFloor | None:
    """From a candidate's cross-fitted ``confidences`` on the labels it was fitted on and whether it was ``correct``
    there: the lowest confidence down to which its error rate above it, with one error added (so a clean sample
    does not promise too much), stays below ``epsilon``; no floor (0) when that holds all the way down. None when
    it holds for under MIN_FLOOR_SHARE of them: nothing it could accept is worth a slice."""
    conf = np.asarray(confidences, dtype=np.float64)
    right = np.asarray(correct, dtype=bool)
    if conf.size == 0:
        return None
    order = np.argsort(-conf, kind="stable")
    rate = (np.cumsum(~right[order]) + 1) / (np.arange(1, conf.size + 1) + 1)

    def reach(limit: float) -> int:
        below = np.flatnonzero(rate < limit)
        return int(below.max()) + 1 if below.size else 0

    top, sure = reach(epsilon), reach(SURE_MARGIN * epsilon) / conf.size
    if top / conf.size < MIN_FLOOR_SHARE:
        return None
    if top == conf.size:
        return SliceFloor(floor=0.0, share=1.0, sure_share=sure)  # no sign yet of where it errs: the whole stream
    return SliceFloor(floor=float(conf[order][top - 1]), share=top / conf.size, sure_share=sure)


def candidate_floor(
    *, fit_probs: npt.NDArray[np.float64] | None, labels: npt.ArrayLike, epsilon: float
) -> SliceFloor | None:
    """A candidate's slice floor (``slice_floor``) from its cross-fitted probabilities on the ``labels`` it was
    fitted on; the whole stream for a labeler fitted without them (the teacher alone on too few reviews)."""
    if fit_probs is None:
        return SliceFloor(floor=0.0, share=1.0, sure_share=1.0)
    return slice_floor(
        confidences=fit_probs.max(axis=1), correct=fit_probs.argmax(axis=1) == np.asarray(labels), epsilon=epsilon
    )


def aimed_coverage(target_coverage: float | None) -> float:
    """The coverage a look is sized and started for: the task's target, DEFAULT_COVERAGE without one."""
    return target_coverage if target_coverage is not None else DEFAULT_COVERAGE


def look_delta(look: int, *, delta: float) -> float:
    """The level look ``look`` (0, 1, ...) tests at: delta / 2^(look+1)."""
    return delta * 0.5 ** (look + 1)


@dataclass(frozen=True)
class LookPlan:
    """When a candidate's look happens and what it may spend, fixed when the candidate is fitted."""

    size: int
    """Fresh uniform reviews the look waits for."""
    level: float
    """The delta it tests at."""


def plan_look(
    look: int,
    *,
    delta: float,
    spent: float,
    reviews_left: int | None,
    epsilon: float,
    min_reviews: int,
    target_coverage: float | None,
    floor: SliceFloor | None = None,
) -> LookPlan | None:
    """Look ``look``'s size and level, from what earlier looks spent of delta (``spent``) and the review budget's
    reviews not yet spent (``reviews_left``; None without a budget). A look is sized for the share of its slice the
    aimed coverage accepts: of the candidate's ``floor`` stratum, or of the whole stream before there is one.

    Without a budget, or while the budget pays for another look after this one: ``look_size`` reviews at half of
    what is left of delta (delta / 2^(look+1) when every look took its half). When it does not, this is the last
    look, so it takes all of delta that is left, and waits for at most the reviews the budget has left (a smaller
    look rather than none). None when that is too few to certify anything. Everything is decided before the slice
    is drawn, so the levels still sum to at most delta whatever the budget does later (a budget raised after its
    last look leaves later looks nothing to certify with)."""
    left = max(0.0, delta - spent)
    accepted = target_coverage if floor is None else floor.accepted_share(target_coverage)

    def sized(j: int) -> int:
        return look_size(j, epsilon=epsilon, delta=delta, min_reviews=min_reviews, target_coverage=accepted)

    planned = sized(look)
    if reviews_left is None or planned + sized(look + 1) <= reviews_left:
        return LookPlan(size=planned, level=left / 2)
    size = min(planned, reviews_left)
    if left <= 0 or size < max(min_reviews, min_certifiable(epsilon=epsilon, delta=left)):
        return None
    return LookPlan(size=size, level=left)


def first_fit(
    *,
    reviews_left: int | None,
    have: int,
    epsilon: float,
    delta: float,
    min_reviews: int,
    target_coverage: float | None,
) -> int:
    """Uniform reviews the first candidate is fitted on: a look's worth, or, when the review budget cannot pay
    for that and a slice after it, half of what the budget can still give to uniform reviews (``have`` already
    drawn plus ``reviews_left``), so that the other half tests it."""
    size = look_size(0, epsilon=epsilon, delta=delta, min_reviews=min_reviews, target_coverage=target_coverage)
    if reviews_left is None or 2 * size <= have + reviews_left:
        return size
    return (have + reviews_left + 1) // 2


def look_size(look: int, *, epsilon: float, delta: float, min_reviews: int, target_coverage: float | None) -> int:
    """Fresh-slice size at which look ``look`` happens: m * 2^look, where m is the fewest reviews in which
    ``target_coverage`` of them (DEFAULT_COVERAGE without a target), all correct, certify epsilon at the first
    look's level, and at least ``min_reviews``."""
    accepted = min_certifiable(epsilon=epsilon, delta=look_delta(0, delta=delta))
    return max(min_reviews, math.ceil(accepted / aimed_coverage(target_coverage))) << look


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
    """Fresh uniform reviews the next look that can certify ``target_coverage`` needs, judged from a labeler's
    ``confidences`` on items it did not learn from (its cross-fitted ones on what it was fitted on, or a slice it
    was tested on) and ``correct``, whether it was right there. None when its error above the target's threshold
    already reaches epsilon: more reviews of such a labeler cannot certify it.

    The error rate above the threshold is estimated with one error added (so a clean sample does not promise
    too much); the look's slice must hold enough accepted items for the Clopper-Pearson bound at its level to
    fall under epsilon.
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
    for look in range(next_look, 30):
        size = look_size(look, epsilon=epsilon, delta=delta, min_reviews=min_reviews, target_coverage=target_coverage)
        accepted = max(1, math.floor(size * target_coverage))
        errors = math.floor(rate * accepted)
        if clopper_pearson_upper(errors=errors, n=accepted, delta=look_delta(look, delta=delta)) <= epsilon:
            return size
    return None


def expected_slice(
    *,
    fit_probs: npt.NDArray[np.float64] | None,
    labels: npt.ArrayLike,
    floor: SliceFloor,
    target_coverage: float | None,
    epsilon: float,
    delta: float,
    min_reviews: int,
    next_look: int,
) -> int | None:
    """The slice a candidate's look is expected to need for the coverage it aims at (``expected_reviews``), from
    its cross-fitted probabilities on the ``labels`` it was fitted on at or above its ``floor``; None without a
    target or cross-fitted probabilities, or when the aimed coverage is out of its reach."""
    if target_coverage is None or fit_probs is None:
        return None
    confidence = fit_probs.max(axis=1)
    above = confidence >= floor.floor
    return expected_reviews(
        confidences=confidence[above],
        correct=(fit_probs.argmax(axis=1) == np.asarray(labels))[above],
        target_coverage=floor.accepted_share(target_coverage),
        epsilon=epsilon,
        delta=delta,
        min_reviews=min_reviews,
        next_look=next_look,
    )
