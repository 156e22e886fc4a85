"""One simulated labeling run of the confidence filter, and the baselines it is compared with.

Teacher probabilities are fixed for the run (scored once, outside), the reviewer is simulated from gold
(optionally noisy), and every method spends at most the same review budget. A review order is recorded
so the final accuracy after any number of reviews can be drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import numpy.typing as npt

from service.pipeline.calibration import fit_calibration
from service.pipeline.policy import DEFAULT_GRID, Policy, candidate_floor, fit_policy, min_certifiable
from service.pipeline.probe import fit_probe
from service.pipeline.review_order import review_priority, wrong_chance
from service.pipeline.route import Signals, route, veto_reasons
from service.pipeline.signals import margin, neighbour_disagreement, ood_distance
from service.ports import FloatArray

IntArray = npt.NDArray[np.int64]
NEIGHBOURS = 5


@dataclass(frozen=True)
class Pool:
    """What one dataset gives every run: teacher probabilities, gold, and (optionally) embeddings."""

    probs: FloatArray
    gold: IntArray
    embeddings: FloatArray | None
    density: FloatArray
    """Representativeness of each item in [0, 1]; all 0.5 without embeddings."""
    labeled_embeddings: FloatArray | None = None
    """Items labeled before the run (the teacher's few-shot pool), which the service holds as labeled
    neighbours from the start; None or empty when there are none."""
    labeled_labels: IntArray | None = None
    labeled_probs: FloatArray | None = None
    """The teacher's probabilities for the labeled items, as the service holds them for reviewed items; with
    them the filter calibrates on one half of the labeled items and certifies on the other."""


@dataclass(frozen=True)
class RunConfig:
    epsilon: float
    delta: float
    review_budget: int
    reviewer_noise: float
    audit_share: float
    seed_reviews: int
    calibration_share: float
    """Share of the budget left after the seed spent on cold-start reviews drawn uniformly at random."""
    baseline_threshold: float


@dataclass(frozen=True)
class Outcome:
    """One method's result in one run."""

    accepted: npt.NDArray[np.bool_]
    """Items whose machine label stands unreviewed as accepted."""
    final: IntArray
    """Final label of every item: the reviewer's where reviewed, else the machine's."""
    review_order: IntArray
    reviewer_labels: IntArray
    """The reviewer's label for each entry of review_order."""
    machine: IntArray
    error_bound: float | None = None
    audit_reviews: int = 0
    audit_errors: int = 0
    cold_start_reviews: int = 0
    """Seed plus uniform cold-start reviews, spent before anything could be accepted."""

    def metrics(self, gold: IntArray, epsilon: float) -> dict[str, float | int | None]:
        n_accepted = int(self.accepted.sum())
        accepted_accuracy = float((self.machine[self.accepted] == gold[self.accepted]).mean()) if n_accepted else None
        realised_error = 1.0 - accepted_accuracy if accepted_accuracy is not None else 0.0
        return {
            "accepted_accuracy": accepted_accuracy,
            "coverage": n_accepted / len(gold),
            "human_reviews": len(self.review_order),
            "error_bound": self.error_bound,
            "final_accuracy": float((self.final == gold).mean()),
            "realised_error": realised_error,
            "within_epsilon": int(realised_error <= epsilon),
            "cold_start_reviews": self.cold_start_reviews,
            "audit_reviews": self.audit_reviews,
            "audit_error": self.audit_errors / self.audit_reviews if self.audit_reviews else None,
        }

    def accuracy_curve(self, gold: IntArray, budget: int) -> FloatArray:
        """Final accuracy after 0, 1, ..., budget reviews (flat once this method stops reviewing)."""
        gain = np.zeros(budget + 1)
        fixed = (self.reviewer_labels == gold[self.review_order]).astype(float)
        was = (self.machine[self.review_order] == gold[self.review_order]).astype(float)
        steps = min(budget, len(self.review_order))
        gain[1 : steps + 1] = np.cumsum(fixed - was)[:steps]
        gain[steps + 1 :] = gain[steps]
        curve: FloatArray = (float((self.machine == gold).sum()) + gain) / len(gold)
        return curve


def simulate_reviewer(gold: IntArray, k: int, noise: float, rng: np.random.Generator) -> IntArray:
    """Gold labels, each replaced with probability ``noise`` by a uniformly drawn other label."""
    flip = rng.random(gold.size) < noise
    other = (gold + rng.integers(1, k, gold.size)) % k
    labels: IntArray = np.where(flip, other, gold)
    return labels


def _finish(machine: IntArray, order: IntArray, reviewer: IntArray, accepted: npt.NDArray[np.bool_]) -> Outcome:
    final = machine.copy()
    final[order] = reviewer[order]
    accepted = accepted.copy()
    accepted[order] = False
    return Outcome(accepted=accepted, final=final, review_order=order, reviewer_labels=reviewer[order], machine=machine)


def run_filter(pool: Pool, config: RunConfig, rng: np.random.Generator, reviewer: IntArray) -> Outcome:
    """The confidence filter: seed reviews of the likeliest errors, calibration (on half the scored labeled items,
    else on the seed), uniform cold-start sample, certified policy (on the other half and that sample), route, then
    the review queue in priority order (audits included) until the budget is spent."""

    n = int(pool.probs.shape[0])
    budget = min(config.review_budget, n)
    log_probs = np.log(np.clip(pool.probs, 1e-12, 1.0))
    n_seed = min(config.seed_reviews, budget)
    # The seed is the head of the review queue before any review: the labels most likely wrong by the
    # teacher's raw confidence and the embedding probe on the labeled pool, so these reviews fix errors. Its
    # choice uses no review outcome, so the uniform sample drawn after it stays valid.
    known_emb, known_labels = _labeled_pool(pool)
    raw_machine = pool.probs.argmax(axis=1).astype(np.int64)
    first = _priorities(pool, pool.probs, raw_machine, known_emb, known_labels, np.zeros(n, dtype=bool))
    seed_idx = np.lexsort((rng.random(n), -first))[:n_seed].astype(np.int64)
    scored = pool.labeled_probs is not None and known_labels.size >= 2 * min_certifiable(
        epsilon=config.epsilon, delta=config.delta
    )
    if scored:
        # The labeled items are a uniform sample with teacher scores: one half fits the calibration, the other
        # half is the certification sample, so neither sees the other's labels. Only a temperature is fitted
        # (as on the seed below): a per-label bias from 100 items moved labels the wrong way on movie reviews.
        halves = np.array_split(rng.permutation(known_labels.size), 2)
        labeled_log_probs = np.log(np.clip(np.asarray(pool.labeled_probs), 1e-12, 1.0))
        calibration = fit_calibration(
            logits_or_logprobs=labeled_log_probs[halves[0]], labels=known_labels[halves[0]], fit_bias=False
        )
    else:
        # Fitted on the seed only, so the policy below is tested on reviews the calibration never saw. The seed
        # is chosen for being likely wrong, so a per-label bias fitted on it would learn that sample's errors and
        # flip labels the teacher has right: only the temperature is fitted, which keeps every item's label.
        calibration = fit_calibration(logits_or_logprobs=log_probs[seed_idx], labels=reviewer[seed_idx], fit_bias=False)
    probs = calibration.apply(log_probs)
    machine = probs.argmax(axis=1).astype(np.int64)
    confidence = probs.max(axis=1)

    # Uniform cold-start reviews only among items that could ever be accepted (see candidate_floor).
    floor = candidate_floor(confidences=np.delete(confidence, seed_idx), epsilon=config.epsilon)
    rest = np.setdiff1d(np.flatnonzero(confidence >= floor), seed_idx)
    n_cal = min(round(config.calibration_share * (budget - n_seed)), rest.size)
    if n_cal < min_certifiable(epsilon=config.epsilon, delta=config.delta) and not scored:
        n_cal = 0  # too few to certify any threshold: those reviews go to the likeliest errors instead
    cal_idx = rng.choice(rest, n_cal, replace=False).astype(np.int64)
    reviewed = np.zeros(n, dtype=bool)
    reviewed[seed_idx] = reviewed[cal_idx] = True
    reviewed_idx = np.flatnonzero(reviewed)

    labeled_emb = np.vstack([known_emb, pool.embeddings[reviewed_idx]]) if pool.embeddings is not None else None
    labeled_labels = np.concatenate([known_labels, reviewer[reviewed_idx]])
    self_index = np.full(n, -1, dtype=np.int64)
    self_index[reviewed_idx] = known_labels.size + np.arange(reviewed_idx.size)
    signals = _signals(pool.embeddings, probs, machine, labeled_emb, labeled_labels, self_index)
    # The thresholds on neighbours and distance are fixed; only the confidence threshold is fitted.
    limits = fit_policy(confidences=[], correct=[], epsilon=config.epsilon, delta=config.delta)
    vetoed = _vetoed(signals, limits)
    grid = tuple(t for t in DEFAULT_GRID if t >= floor)
    certify = partial(fit_policy, epsilon=config.epsilon, delta=config.delta, audit_share=config.audit_share, grid=grid)
    if scored:
        test = halves[1]
        test_probs = calibration.apply(labeled_log_probs[test])
        test_signals = _signals(
            None if labeled_emb is None else known_emb[test],
            test_probs,
            test_probs.argmax(axis=1).astype(np.int64),
            labeled_emb,
            labeled_labels,
            test.astype(np.int64),
        )
        test_vetoed = _vetoed(test_signals, limits)
        # Labeled items and cold-start reviews are both uniform draws of the items to route (the cold-start ones
        # among those above the floor, the only ones tested), so they certify together, binomially.
        policy = certify(
            confidences=np.concatenate([test_probs.max(axis=1), confidence[cal_idx]]),
            correct=np.concatenate(
                [test_probs.argmax(axis=1) == known_labels[test], machine[cal_idx] == reviewer[cal_idx]]
            ),
            vetoed=np.concatenate([test_vetoed, vetoed[cal_idx]]),
        )
    else:
        policy = certify(
            confidences=confidence[cal_idx],
            correct=machine[cal_idx] == reviewer[cal_idx],
            vetoed=vetoed[cal_idx],
            pool_confidences=confidence[~reviewed],
            pool_vetoed=vetoed[~reviewed],
        )
    accepted = np.zeros(n, dtype=bool)
    audit = np.zeros(n, dtype=bool)
    draws = rng.random(n)
    for i in np.flatnonzero(~reviewed):
        decision = route(signals=signals[i], policy=policy, audit_draw=float(draws[i]))
        accepted[i] = decision.accept
        audit[i] = decision.reasons == ("audit_sample",)
    waiting = np.flatnonzero(~reviewed & ~accepted)
    priority = _priorities(pool, probs, machine, labeled_emb, labeled_labels, audit)[waiting]
    # Ties (for example equal audit priority) are broken at random, not by position in the file.
    queue = waiting[np.lexsort((rng.random(waiting.size), -priority))] if waiting.size else waiting
    spent = queue[: budget - n_seed - n_cal].astype(np.int64)
    order = np.concatenate([seed_idx, cal_idx, spent]).astype(np.int64)
    # Items still waiting keep the calibrated teacher label.
    outcome = _finish(machine, order, reviewer, accepted)
    audited = spent[audit[spent]]
    return Outcome(
        accepted=outcome.accepted,
        final=outcome.final,
        review_order=order,
        reviewer_labels=outcome.reviewer_labels,
        machine=machine,
        error_bound=policy.error_bound,
        audit_reviews=int(audited.size),
        audit_errors=int((machine[audited] != reviewer[audited]).sum()),
        cold_start_reviews=int(n_seed + n_cal),
    )


def _signals(
    query_emb: FloatArray | None,
    probs: FloatArray,
    machine: IntArray,
    labeled_emb: FloatArray | None,
    labeled_labels: IntArray,
    self_index: IntArray,
) -> list[Signals]:
    """Each query item's signals; neighbours and distance are against the labeled items, where ``self_index``
    gives a query's own row among them (-1 for none), so that no item is its own neighbour."""
    n = probs.shape[0]
    confidence, margins = probs.max(axis=1), margin(probs=probs)
    disagreement = distance = np.full(n, np.nan)
    if query_emb is not None and labeled_emb is not None and labeled_labels.size >= 2:
        disagreement = neighbour_disagreement(
            query_emb=query_emb,
            labeled_emb=labeled_emb,
            labeled_labels=labeled_labels,
            predicted=machine,
            k=NEIGHBOURS,
            self_index=self_index,
        )
        distance = ood_distance(query_emb=query_emb, labeled_emb=labeled_emb, self_index=self_index)
    return [
        Signals(
            confidence=float(confidence[i]),
            margin=float(margins[i]),
            neighbour_disagreement=None if np.isnan(disagreement[i]) else float(disagreement[i]),
            ood_distance=None if np.isnan(distance[i]) else float(distance[i]),
        )
        for i in range(n)
    ]


def _labeled_pool(pool: Pool) -> tuple[FloatArray, IntArray]:
    """Embeddings and labels of the items labeled before the run (empty arrays when there are none)."""
    if pool.embeddings is None or pool.labeled_embeddings is None or pool.labeled_labels is None:
        width = 0 if pool.embeddings is None else pool.embeddings.shape[1]
        return np.empty((0, width)), np.zeros(0, dtype=np.int64)
    return pool.labeled_embeddings, pool.labeled_labels


def _vetoed(signals: list[Signals], limits: Policy) -> npt.NDArray[np.bool_]:
    """Whether a signal other than confidence sends each item to review under ``limits``."""
    return np.array([bool(veto_reasons(signals=s, policy=limits)) for s in signals], dtype=bool)


def _priorities(
    pool: Pool,
    probs: FloatArray,
    machine: IntArray,
    labeled_emb: FloatArray | None,
    labeled_labels: IntArray,
    audit: npt.NDArray[np.bool_],
) -> FloatArray:
    """Review priority of every item, as the service's review queue orders them: the chance of being wrong from
    ``probs`` and the embedding probe on the labeled items, weighted by density."""
    support = None
    if pool.embeddings is not None and labeled_emb is not None:
        probe = fit_probe(embeddings=labeled_emb, labels=labeled_labels, n_labels=int(probs.shape[1]))
        support = None if probe is None else probe.predict(pool.embeddings)
    wrong = wrong_chance(probs=probs, predicted=machine, support=support)
    return np.array(
        [
            review_priority(wrong_chance=float(wrong[i]), density=float(pool.density[i]), audit=bool(audit[i]))
            for i in range(probs.shape[0])
        ]
    )


def run_random_review(pool: Pool, config: RunConfig, rng: np.random.Generator, reviewer: IntArray) -> Outcome:
    """Review a uniform random sample of the budget; accept every other teacher label."""
    n = int(pool.probs.shape[0])
    machine = pool.probs.argmax(axis=1).astype(np.int64)
    order = rng.choice(n, min(config.review_budget, n), replace=False).astype(np.int64)
    return _finish(machine, order, reviewer, np.ones(n, dtype=bool))


def run_max_prob(pool: Pool, config: RunConfig, rng: np.random.Generator, reviewer: IntArray) -> Outcome:
    """Accept teacher labels with probability >= the fixed threshold; review the rest in random order."""
    machine = pool.probs.argmax(axis=1).astype(np.int64)
    accepted = pool.probs.max(axis=1) >= config.baseline_threshold
    below = rng.permutation(np.flatnonzero(~accepted))
    return _finish(machine, below[: config.review_budget].astype(np.int64), reviewer, accepted)


def run_accept_all(pool: Pool) -> Outcome:
    """Accept every teacher label; no reviews."""
    n = int(pool.probs.shape[0])
    machine = pool.probs.argmax(axis=1).astype(np.int64)
    empty = np.zeros(0, dtype=np.int64)
    return Outcome(
        accepted=np.ones(n, dtype=bool), final=machine, review_order=empty, reviewer_labels=empty, machine=machine
    )
