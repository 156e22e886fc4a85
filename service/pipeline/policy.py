"""The acceptance policy: a confidence threshold certified on human-reviewed items.

The task states a target error ``epsilon`` for accepted machine labels and a confidence ``1 - delta``.
``fit_policy`` picks the lowest threshold whose accepted items provably keep their error at most
``epsilon``, with probability at least ``1 - delta`` over the draw of the reviewed items (Learn-then-Test).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

DEFAULT_GRID: tuple[float, ...] = tuple(float(t) for t in np.round(1.0 - np.geomspace(0.001, 0.7, 48), 4))
"""Candidate thresholds on calibrated confidence, from 0.999 down to 0.3, dense near 1."""


@dataclass(frozen=True)
class Policy:
    """What ``route`` needs to decide accept or review, and where the decision came from."""

    epsilon: float
    """Target error of accepted machine labels."""
    delta: float
    """The bound holds with probability at least 1 - delta over the reviewed sample."""
    audit_share: float
    """Share of otherwise accepted items sent to review anyway, to keep the realised error measured."""
    threshold: float | None
    """Lowest calibrated confidence accepted; None while no threshold is certified (cold start)."""
    min_reviews: int
    """Reviewed sample size below which nothing is certified."""
    ood_max: float
    """Largest cosine distance to the nearest labeled item that may still be accepted."""
    neighbour_max: float
    """Largest share of disagreeing nearest accepted neighbours that may still be accepted. The default 0.8
    vetoes only when all of 5 neighbours disagree: embeddings that do not carry the task (sentiment in a
    topical embedding) make 4 of 5 disagree by chance for a fifth of all items."""
    fitted_on: int
    """Reviewed items the threshold was fitted on."""
    error_bound: float | None
    """Clopper-Pearson upper bound (level 1 - delta) on the error of items accepted at ``threshold``."""
    uniform_draws: bool = True
    """Without a threshold: whether items go to review as uniform draws (cold start) that can certify one, or, once
    no certificate is in reach within the review budget, by their chance of being wrong (``no_certificate``)."""
    draw_floor: float = 0.0
    """Without a threshold: the newest candidate's slice floor. Only items at or above it are uniform draws; the
    others, which its look cannot accept, go to review by their chance of being wrong (``below_floor``)."""

    @property
    def cold_start(self) -> bool:
        return self.threshold is None


@dataclass(frozen=True)
class QualitySummary:
    """The numbers behind ``GET /v1/tasks/{task}/quality``."""

    epsilon: float
    delta: float
    threshold: float | None
    error_bound: float | None
    """The policy's certified bound on accepted-label error (None in cold start)."""
    audit_reviews: int
    audit_errors: int
    audit_error: float | None
    """Realised error among reviewed audit samples (None before any)."""
    audit_error_upper: float | None
    """Clopper-Pearson upper bound (level 1 - delta) on the audited error."""
    accepted: int
    total: int
    coverage: float
    """Share of items whose machine label was accepted."""
    human_reviews: int


def min_certifiable(*, epsilon: float, delta: float) -> int:
    """The fewest accepted reviewed items that can certify ``epsilon`` at all: all correct, (1-eps)^n <= delta."""
    return math.ceil(math.log(delta) / math.log1p(-epsilon))


def clopper_pearson_upper(*, errors: int, n: int, delta: float) -> float:
    """One-sided upper confidence bound at level 1 - delta on a binomial rate from ``errors`` in ``n``."""
    if n == 0 or errors >= n:
        return 1.0
    return float(stats.beta.ppf(1.0 - delta, errors + 1, n - errors))


def binomial_p_value(*, errors: int, n: int, epsilon: float) -> float:
    """p-value of the null "error rate > epsilon" given ``errors`` in ``n``: P(Binomial(n, epsilon) <= errors)."""
    return float(stats.binom.cdf(errors, n, epsilon))


def hypergeometric_upper(*, errors: int, n: int, n_pool: int, delta: float) -> float:
    """Upper bound (level 1 - delta) on the error rate among ``n_pool`` items, from ``errors`` among ``n``
    reviewed items drawn uniformly without replacement from the same n + n_pool.

    The largest K / n_pool such that P(Hypergeometric(n + n_pool, errors + K, n) <= errors) > delta:
    pool error counts above it would make so few reviewed errors this unlikely. 0.0 for an empty pool.
    """
    if n_pool == 0:
        return 0.0
    pool_errors = np.arange(n_pool + 1)
    p_values = stats.hypergeom.cdf(errors, n + n_pool, errors + pool_errors, n)
    plausible = pool_errors[p_values > delta]
    return float(plausible.max()) / n_pool if plausible.size else 0.0


def fit_policy(
    *,
    confidences: npt.ArrayLike,
    correct: npt.ArrayLike,
    epsilon: float = 0.05,
    delta: float = 0.1,
    audit_share: float = 0.05,
    min_reviews: int = 30,
    vetoed: npt.ArrayLike | None = None,
    ood_max: float = 0.75,
    neighbour_max: float = 0.8,
    grid: tuple[float, ...] = DEFAULT_GRID,
    pool_confidences: npt.ArrayLike | None = None,
    pool_vetoed: npt.ArrayLike | None = None,
    start_share: float = 0.5,
    floor: float = 0.0,
) -> Policy:
    """Certify the lowest confidence threshold whose accepted items have error <= epsilon w.p. >= 1 - delta.

    ``confidences`` are the calibrated top-label confidences of reviewed items, ``correct`` whether the
    machine label matched the human one, ``vetoed`` whether another signal (neighbours, out of distribution,
    student) would send the item to review regardless; vetoed items count as not accepted, so the
    certified rule is the one ``route`` applies.

    Procedure (Learn-then-Test, Angelopoulos et al. 2021, with fixed-sequence testing): for each threshold t
    the null hypothesis is H_t: P(wrong | accepted at t) > epsilon. Among the n_t reviewed items accepted at t
    with k_t wrong, k_t ~ Binomial(n_t, risk) given n_t, so p_t = P(Binomial(n_t, epsilon) <= k_t) is a
    valid (Clopper-Pearson) p-value. Thresholds are tested from the highest down, each at level delta, and
    testing stops at the first one not rejected; this controls the chance of certifying any threshold whose
    risk exceeds epsilon at delta, without assuming the risk is monotone in t. Testing starts at the highest
    grid threshold accepting at least max(m, min(3m, s * n)) reviewed items, m = ``min_certifiable`` and s =
    ``start_share`` (the task's target coverage, or a half): higher ones hold too few items to be rejected, or
    to survive a single error, and a start below the target would spend the sequence where it is not wanted.
    The start depends only on the confidences, never on correctness. Thresholds below ``floor`` are not tested:
    reviews drawn only among items at or above it sample none below it.

    When the items to be routed are known (``pool_confidences`` and ``pool_vetoed`` of the unreviewed
    items, as in a batch or the benchmark), the null is instead about the realised error of exactly the
    pool items accepted at t: with N_t of them, n_t + N_t items are exchangeable, so the k_t reviewed
    errors are hypergeometric given the total, and p_t = P(Hypergeometric(n_t + N_t, k_t + floor(eps N_t)
    + 1, n_t) <= k_t), the largest over the null (sampling without replacement, so no binomial slack).

    Validity needs the reviewed items to be a uniform random sample of the items the policy will route
    (for example cold-start random reviews and audit samples), not items chosen for review by uncertainty.
    The service's audits are drawn among all routed items, not only accepted ones, so every uniform review tests
    every threshold (and every later labeler, see pipeline/certification.py).

    Returns a ``Policy``; its ``threshold`` is None (cold start) with fewer than ``min_reviews`` items or
    when no threshold is certified, and ``error_bound`` is the upper confidence bound (level 1 - delta)
    on the error of accepted items at the threshold: Clopper-Pearson, or hypergeometric with a pool.
    """
    conf = np.asarray(confidences, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    veto = np.zeros(conf.shape, dtype=bool) if vetoed is None else np.asarray(vetoed, dtype=bool)
    if conf.ndim != 1 or ok.shape != conf.shape or veto.shape != conf.shape:
        raise ValueError(f"confidences, correct and vetoed must be 1-D of one length: {conf.shape}, {ok.shape}")
    if not (0 < epsilon < 1 and 0 < delta < 1 and 0 <= audit_share <= 1):
        raise ValueError("epsilon and delta must lie in (0, 1) and audit_share in [0, 1]")

    def policy(threshold: float | None, bound: float | None) -> Policy:
        return Policy(
            epsilon=epsilon,
            delta=delta,
            audit_share=audit_share,
            threshold=threshold,
            min_reviews=min_reviews,
            ood_max=ood_max,
            neighbour_max=neighbour_max,
            fitted_on=int(conf.size),
            error_bound=bound,
        )

    if conf.size < min_reviews:
        return policy(None, None)
    pool = None if pool_confidences is None else np.asarray(pool_confidences, dtype=np.float64)
    if pool is not None and pool_vetoed is not None:
        pool = pool[~np.asarray(pool_vetoed, dtype=bool)]
    eligible = ~veto
    # Start where a few errors can still be absorbed: the top thresholds hold so few items that a single
    # error there would end the sequence before the well-populated thresholds are reached.
    n_min = min_certifiable(epsilon=epsilon, delta=delta)
    n_start = max(n_min, min(3 * n_min, int(start_share * int(eligible.sum()))))
    certified: tuple[float, float] | None = None
    for threshold in sorted(set(grid), reverse=True):
        if threshold < floor:
            break
        accepted = eligible & (conf >= threshold)
        n = int(accepted.sum())
        if certified is None and n < n_start:
            continue
        errors = int(n - ok[accepted].sum())
        if pool is None:
            if binomial_p_value(errors=errors, n=n, epsilon=epsilon) > delta:
                break
            certified = (threshold, clopper_pearson_upper(errors=errors, n=n, delta=delta))
            continue
        n_pool = int((pool >= threshold).sum())
        if n_pool == 0:
            continue  # nothing in the pool to accept here: nothing to certify
        bound = hypergeometric_upper(errors=errors, n=n, n_pool=n_pool, delta=delta)
        if bound > epsilon:
            break
        certified = (threshold, bound)
    if certified is None:
        return policy(None, None)
    return policy(*certified)


def quality_summary(
    *,
    policy: Policy,
    audit_correct: npt.ArrayLike,
    accepted: int,
    total: int,
    human_reviews: int,
) -> QualitySummary:
    """The task's quality numbers: certified bound, realised audit error, coverage and reviews spent.

    ``audit_correct`` holds, for each reviewed audit sample, whether the accepted machine label matched the
    reviewer; ``accepted`` counts items whose machine label was accepted, of ``total`` routed items.
    """
    audits = np.asarray(audit_correct, dtype=bool)
    n_audit = int(audits.size)
    audit_errors = int(n_audit - audits.sum())
    return QualitySummary(
        epsilon=policy.epsilon,
        delta=policy.delta,
        threshold=policy.threshold,
        error_bound=policy.error_bound,
        audit_reviews=n_audit,
        audit_errors=audit_errors,
        audit_error=audit_errors / n_audit if n_audit else None,
        audit_error_upper=(
            clopper_pearson_upper(errors=audit_errors, n=n_audit, delta=policy.delta) if n_audit else None
        ),
        accepted=accepted,
        total=total,
        coverage=accepted / total if total else 0.0,
        human_reviews=human_reviews,
    )
