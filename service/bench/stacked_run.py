"""One simulated labeling run of the certified labeler as the service runs it, and the active-learning baseline.

The certified run (``run_certified``) runs the looks as the service does (pipeline/certification.py): a candidate
labeler (the embedding probe, and the stack over the probe and the teacher, pipeline/stacking.fit_stacked) is
fitted on every label there is, the items labeled before the run included, and gets a slice floor from its
cross-fitted errors; its look tests it on its slice, the uniform draws after it that it is at least as sure of as
its floor (draws below it are passed over and wait for priority review), at level delta / 2^(j+1), or, at the last
look the budget pays for, on what the budget has left at all of delta that is left (certification.plan_look); a
failed look fits the next candidate on everything, the slice included. Cold start ends at a certified look, when
the budget pays for no further look, or when nothing it could accept is in reach; what budget is left goes to the
labels likeliest wrong, accepted or not, ranked again every RERANK_EVERY reviews by the labeler refitted on them.
Items neither reviewed nor accepted get the label of the labeler refitted on every human label.

The active-learning baseline (``run_active_learning``) uses no LLM: logistic regression on the MiniLM embeddings of
the labeled items, uncertainty sampling in ten rounds for the same budget, its predictions as the labels of every
item it did not review.

The certified-LR peer (``run_certified_lr``, ``../shared/peers/certified_lr.py`` inside the simulation) uses no LLM
either: logistic regression on the embeddings of the labeled items plus the whole budget of uniform reviews, its
threshold the lowest whose Clopper-Pearson bound on those reviews (scored by the model fitted before them) is within
epsilon at the full delta, scanning every threshold with no correction for the repeated looks, and applied to the
model refitted on everything. A generous yardstick: its certificate is not valid as stated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from service.bench.quality_sim import Outcome, Pool, RunConfig, finish
from service.pipeline.certification import LookPlan, SliceFloor, candidate_floor, expected_slice, plan_look
from service.pipeline.kinds import probe_fitter
from service.pipeline.policy import Policy, clopper_pearson_upper, fit_policy
from service.pipeline.probe import ProbeInput
from service.pipeline.review_order import RERANK_EVERY, review_priority
from service.pipeline.signals import neighbour_disagreement, ood_distance
from service.pipeline.stacking import StackedLabeler, fit_stacked
from service.ports import FloatArray

IntArray = npt.NDArray[np.int64]
AL_ROUNDS = 10
NEIGHBOURS = 5
"""Nearest labeled items behind the neighbour signal, as in the service (jobs/scoring.py)."""


def run_certified(
    pool: Pool, config: RunConfig, rng: np.random.Generator, reviewer: IntArray, *, sources: Sequence[str]
) -> Outcome:
    """The certified labeler over ``sources`` ("teacher", "probe"), as described in the module docstring."""
    n, k = pool.probs.shape
    budget = min(config.review_budget, n)
    known_items, known_labels, known_probs = _known(pool, rng)
    labeled = _Labeled(known_probs, known_items, known_labels)
    draws = rng.permutation(n)
    cursor = 0
    """Items taken from the random order so far; those below the candidate's floor are passed over, not reviewed."""
    drawn: list[int] = []
    candidate: StackedLabeler | None = None
    floor: SliceFloor | None = None
    confidence = np.zeros(n)
    """The candidate's confidence on every item, fixed when it is fitted: draws below its floor are passed over."""
    through = 0
    """Labels the candidate was fitted on: its fresh slice is every label after them."""
    policy = fit_policy(confidences=[], correct=[], epsilon=config.epsilon, delta=config.delta)
    look, used = 0, 0.0
    """Looks taken, and what they spent of delta."""
    plan = _plan(config, 0, used=used, reviews_left=budget, floor=None)
    while plan is not None and cursor < n:
        # Candidate 0 waits for a look's worth of labels to fit on; candidate j for a fresh slice of its size.
        want = plan.size if candidate is None else through + plan.size
        if labeled.labels.size >= want:
            if candidate is not None and floor is not None:
                policy = _look(candidate, labeled, through, config, delta=plan.level, floor=floor)
                if policy.threshold is not None:
                    break
                used, look = used + plan.level, look + 1
            candidate, through = _fit(labeled, pool, sources), labeled.labels.size
            floor = candidate_floor(fit_probs=candidate.fit_probs, labels=labeled.labels, epsilon=config.epsilon)
            if floor is None:
                break  # nothing it could accept is worth a slice
            plan = _plan(config, look, used=used, reviews_left=budget - len(drawn), floor=floor)
            confidence = candidate.predict(pool.probs, pool.items).max(axis=1)
            if plan is None or not _in_reach(candidate, labeled.labels, config, look, floor):
                break
            continue
        if want - labeled.labels.size > budget - len(drawn):
            break  # the look is out of the budget's reach: cold-start draws would buy no certificate
        i = int(draws[cursor])
        cursor += 1
        if floor is not None and confidence[i] < floor.floor:
            continue  # below the floor: it waits for review by its chance of being wrong
        # Cold start: a uniform review (within the candidate's floor).
        labeled = labeled.plus(pool.probs[[i]], _rows(pool.items, np.asarray([i])), reviewer[[i]])
        drawn.append(i)
    uniform = np.asarray(drawn, dtype=np.int64)
    reviewed = np.zeros(n, dtype=bool)
    reviewed[uniform] = True
    # After cold start the rest of the budget goes to the labels likeliest wrong, accepted ones included (a label
    # above the threshold is safe enough to keep, not too good to check), ranked by the labeler refitted on the
    # human labels, and re-ranked every RERANK_EVERY reviews as the service's rerank_queue job does (by the chance
    # that the refitted labeler's own label is wrong: here that label, not the routed one, is what an unreviewed
    # item ends with).
    spent = np.zeros(0, dtype=np.int64)
    while (left := budget - uniform.size - spent.size) > 0 and not reviewed.all():
        ranker = _refit(labeled, pool, spent, reviewer, k, sources)
        waiting = np.flatnonzero(~reviewed)
        priority = np.array(
            [
                review_priority(wrong_chance=1.0 - float(ranker[i].max()), density=float(pool.density[i]))
                for i in waiting
            ]
        )
        taken = waiting[np.lexsort((rng.random(waiting.size), -priority))][: min(left, RERANK_EVERY)]
        reviewed[taken] = True
        spent = np.concatenate([spent, taken]).astype(np.int64)
    order = np.concatenate([uniform, spent]).astype(np.int64)
    # The best label for what is left: the labeler refitted on every human label (the queue's picks teach the probe).
    best = _refit(labeled, pool, spent, reviewer, k, sources)
    accepted = np.zeros(n, dtype=bool)
    machine = best.argmax(axis=1).astype(np.int64)
    if candidate is not None and policy.threshold is not None:
        # A certified look ends cold start, so the candidate is the labeler it certified, applied as tested.
        probs = candidate.predict(pool.probs, pool.items)
        machine = probs.argmax(axis=1).astype(np.int64)
        vetoed = _vetoed(pool.embeddings, machine, labeled, np.full(n, -1, dtype=np.int64), policy)
        accepted = ~reviewed & ~vetoed & (probs.max(axis=1) >= policy.threshold)
    machine_final = np.where(accepted, machine, best.argmax(axis=1)).astype(np.int64)
    final = machine_final.copy()
    final[order] = reviewer[order]
    return Outcome(
        accepted=accepted,
        final=final,
        review_order=order,
        reviewer_labels=reviewer[order],
        machine=machine_final,
        error_bound=policy.error_bound,
        cold_start_reviews=int(uniform.size),
    )


def _plan(config: RunConfig, look: int, *, used: float, reviews_left: int, floor: SliceFloor | None) -> LookPlan | None:
    """As the service plans it (task_policy._plan): sized for the share of the slice the aimed coverage accepts."""
    return plan_look(
        look,
        delta=config.delta,
        spent=used,
        reviews_left=reviews_left,
        epsilon=config.epsilon,
        min_reviews=config.min_reviews,
        target_coverage=config.target_coverage,
        floor=floor,
    )


def _refit(
    labeled: _Labeled, pool: Pool, spent: IntArray, reviewer: IntArray, k: int, sources: Sequence[str]
) -> FloatArray:
    """Every item's probabilities from the labeler fitted on the uniform labels, its probe also on ``spent``."""
    return fit_stacked(
        teacher=labeled.teacher,
        items=labeled.items,
        labels=labeled.labels,
        n_labels=k,
        sources=sources,
        extra=_rows(pool.items, spent),
        extra_labels=reviewer[spent],
        kind=pool.kind,
    ).predict(pool.probs, pool.items)


def _fit(labeled: _Labeled, pool: Pool, sources: Sequence[str]) -> StackedLabeler:
    return fit_stacked(
        teacher=labeled.teacher,
        items=labeled.items,
        labels=labeled.labels,
        n_labels=pool.probs.shape[1],
        sources=sources,
        kind=pool.kind,
    )


@dataclass(frozen=True)
class _Labeled:
    teacher: FloatArray
    items: ProbeInput | None
    labels: IntArray

    @property
    def embeddings(self) -> FloatArray | None:
        return None if self.items is None else self.items.embeddings

    def tail(self, start: int) -> _Labeled:
        rest = None if self.items is None else self.items.take(np.arange(start, len(self.items)))
        return _Labeled(self.teacher[start:], rest, self.labels[start:])

    def plus(self, teacher: FloatArray, items: ProbeInput | None, labels: IntArray) -> _Labeled:
        joined = None if self.items is None or items is None else self.items.plus(items)
        return _Labeled(np.vstack([self.teacher, teacher]), joined, np.concatenate([self.labels, labels]))


def _look(
    labeler: StackedLabeler, labeled: _Labeled, through: int, config: RunConfig, *, delta: float, floor: SliceFloor
) -> Policy:
    """Certify ``labeler``'s threshold at level ``delta`` on its fresh slice, the labels after the first
    ``through`` (which it was fitted on)."""
    fresh = labeled.tail(through)
    probs = labeler.predict(fresh.teacher, fresh.items)
    limits = fit_policy(confidences=[], correct=[], epsilon=config.epsilon, delta=delta)
    # Neighbours and distance as the service measures them for a routed item: against every human label, the
    # item's own left out.
    own_rows = through + np.arange(fresh.labels.size, dtype=np.int64)
    return fit_policy(
        confidences=probs.max(axis=1),
        correct=probs.argmax(axis=1) == fresh.labels,
        vetoed=_vetoed(fresh.embeddings, probs.argmax(axis=1).astype(np.int64), labeled, own_rows, limits),
        epsilon=config.epsilon,
        delta=delta,
        audit_share=config.audit_share,
        min_reviews=min(config.min_reviews, fresh.labels.size),
        start_share=floor.accepted_share(config.target_coverage),
        floor=floor.floor,
    )


def _in_reach(labeler: StackedLabeler, labels: IntArray, config: RunConfig, look: int, floor: SliceFloor) -> bool:
    """Whether the candidate's look can certify the coverage it aims at (the service's
    task_policy._target_in_reach): not when its cross-fitted error above that coverage's threshold, among what it
    was fitted on at or above its floor, already reaches epsilon; then cold-start draws stop and the budget goes
    to the labels likeliest wrong. Whether the look fits in the budget is checked before each draw; the projected
    size is only reported, because on a few hundred labels one or two errors more or less move it by a whole look."""
    if not floor.reaches(config.target_coverage):
        return False
    if config.target_coverage is None or labeler.fit_probs is None:
        return True
    needed = expected_slice(
        fit_probs=labeler.fit_probs,
        labels=labels,
        floor=floor,
        target_coverage=config.target_coverage,
        epsilon=config.epsilon,
        delta=config.delta,
        min_reviews=config.min_reviews,
        next_look=look,
    )
    return needed is not None


def _vetoed(
    query: FloatArray | None, predicted: IntArray, labeled: _Labeled, self_index: IntArray, limits: Policy
) -> npt.NDArray[np.bool_]:
    """Whether the neighbour or the distance signal sends each item to review under ``limits`` (route's vetoes)."""
    if query is None or labeled.embeddings is None or labeled.labels.size < 2:
        return np.zeros(predicted.size, dtype=bool)
    disagreement = neighbour_disagreement(
        query_emb=query,
        labeled_emb=labeled.embeddings,
        labeled_labels=labeled.labels,
        predicted=predicted,
        k=NEIGHBOURS,
        self_index=self_index,
    )
    distance = ood_distance(query_emb=query, labeled_emb=labeled.embeddings, self_index=self_index)
    vetoed: npt.NDArray[np.bool_] = (disagreement > limits.neighbour_max) | (distance > limits.ood_max)
    return vetoed


def _rows(items: ProbeInput | None, rows: npt.NDArray[np.bool_] | IntArray) -> ProbeInput | None:
    return None if items is None else items.take(rows)


def _known(pool: Pool, rng: np.random.Generator) -> tuple[ProbeInput | None, IntArray, FloatArray]:
    """The items labeled before the run (the teacher's few-shot pool) in a seeded random order."""
    if pool.labeled_labels is None or pool.labeled_probs is None:
        k = pool.probs.shape[1]
        none = None if pool.items is None else pool.items.take(np.zeros(0, dtype=np.int64))
        return none, np.zeros(0, dtype=np.int64), np.zeros((0, k))
    order = rng.permutation(pool.labeled_labels.size)
    known = None if pool.labeled_items is None else pool.labeled_items.take(order)
    return known, pool.labeled_labels[order], pool.labeled_probs[order]


def _embeddings_alone(pool: Pool, rng: np.random.Generator) -> tuple[FloatArray, FloatArray, IntArray]:
    """Every item's embeddings, and those and the labels of the items labeled before the run, for the baselines
    that read embeddings alone."""
    if pool.embeddings is None:
        raise ValueError("the baselines without the LLM need embeddings")
    known, labels, _ = _known(pool, rng)
    width = pool.embeddings.shape[1]
    return pool.embeddings, (np.zeros((0, width)) if known is None else known.embeddings), labels


def run_active_learning(pool: Pool, config: RunConfig, rng: np.random.Generator, reviewer: IntArray) -> Outcome:
    """Logistic regression on the labeled items' embeddings with uncertainty sampling (least confident first) in
    AL_ROUNDS rounds of the budget; no LLM. Its predictions label every item it did not review."""
    embeddings, known_emb, known_labels = _embeddings_alone(pool, rng)
    n, k = pool.probs.shape
    emb = ProbeInput.of(np.vstack([known_emb, embeddings]), None)
    alone = ProbeInput.of(embeddings, None)
    labels = np.concatenate([known_labels, np.full(n, -1, dtype=np.int64)])
    offset, budget = known_labels.size, min(config.review_budget, n)
    order: list[int] = []
    rounds = [len(chunk) for chunk in np.array_split(np.arange(budget), AL_ROUNDS) if len(chunk)]
    predictions = np.zeros((n, k))
    for size in [*rounds, 0]:
        probe = probe_fitter(pool.kind)(inputs=emb, labels=labels, n_labels=k)
        predictions = probe.predict(alone) if probe is not None else np.full((n, k), 1.0 / k)
        if size == 0:
            break
        unreviewed = np.setdiff1d(np.arange(n), order)
        # Least confident first; before any probe can be fitted, a uniform draw.
        uncertainty = 1.0 - predictions[unreviewed].max(axis=1) + 1e-9 * rng.random(unreviewed.size)
        picked = unreviewed[np.argsort(-uncertainty)[:size]]
        order.extend(int(i) for i in picked)
        labels[offset + picked] = reviewer[picked]
    reviewed = np.asarray(order, dtype=np.int64)
    machine = predictions.argmax(axis=1).astype(np.int64)
    accepted = np.ones(n, dtype=bool)
    accepted[reviewed] = False
    final = machine.copy()
    final[reviewed] = reviewer[reviewed]
    return Outcome(
        accepted=accepted, final=final, review_order=reviewed, reviewer_labels=reviewer[reviewed], machine=machine
    )


PEER_L2 = 0.25
"""The peer's scikit-learn C = 4."""


def run_certified_lr(pool: Pool, config: RunConfig, rng: np.random.Generator, reviewer: IntArray) -> Outcome:
    """The certified-LR peer described in the module docstring: the whole budget reviewed uniformly first."""
    embeddings, known_emb, known_labels = _embeddings_alone(pool, rng)
    n, k = pool.probs.shape
    alone = ProbeInput.of(embeddings, None)
    reviewed = rng.permutation(n)[: min(config.review_budget, n)].astype(np.int64)
    fit_probe = probe_fitter(pool.kind)
    before = fit_probe(inputs=ProbeInput.of(known_emb, None), labels=known_labels, n_labels=k, l2=PEER_L2)
    full = fit_probe(
        inputs=ProbeInput.of(np.vstack([known_emb, embeddings[reviewed]]), None),
        labels=np.concatenate([known_labels, reviewer[reviewed]]),
        n_labels=k,
        l2=PEER_L2,
    )
    threshold: float | None = None
    bound: float | None = None
    if before is not None:
        probs = before.predict(alone.take(reviewed))
        conf, right = probs.max(axis=1), probs.argmax(axis=1) == reviewer[reviewed]
        for t in sorted(set(conf.tolist()), reverse=True):
            above = conf >= t
            upper = clopper_pearson_upper(errors=int((~right[above]).sum()), n=int(above.sum()), delta=config.delta)
            if upper <= config.epsilon:
                threshold, bound = t, upper
    labels = full.predict(alone) if full is not None else np.full((n, k), 1.0 / k)
    machine = labels.argmax(axis=1).astype(np.int64)
    accepted = labels.max(axis=1) >= threshold if threshold is not None else np.zeros(n, dtype=bool)
    outcome = finish(machine, reviewed, reviewer, accepted)
    return replace(outcome, error_bound=bound, cold_start_reviews=int(reviewed.size))
