"""A task's labeler and its certified threshold: candidates fitted and tested at looks on their fresh slices (see
pipeline/certification.py), read by the labeling job, the bulk path and GET /quality from here, so all three apply
the same rule.

Before the first candidate the teacher's scores are calibrated on the task's uniform reviews (as many as there
are); from then on the newest candidate routes items, and the newest labeler whose look certified a threshold
decides what is accepted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from sqlalchemy.orm import Session

from service.pipeline.calibration import Calibration, fit_calibration
from service.pipeline.cascade import student_policy
from service.pipeline.certification import (
    LookPlan,
    SliceFloor,
    candidate_floor,
    expected_slice,
    first_fit,
    plan_look,
)
from service.pipeline.policy import Policy, fit_policy
from service.pipeline.pool import LabeledPool
from service.pipeline.probe import AnyProbe, ProbeInput, probe_from_json
from service.pipeline.review_order import density, explain_priority, review_priority, wrong_chance
from service.pipeline.sources import HUMAN_SOURCES
from service.pipeline.stacking import Stack, StackedLabeler, fit_stacked
from service.ports import FloatArray, TaskKind
from service.store import items, labelers, review, students, tasks
from service.store.history import UniformReview
from service.store.items import QueuedForReview
from service.tables import LabelerVersion, Task

FIT_MIN = 10
"""Uniform reviews below which a candidate's stack is the teacher alone."""
DENSITY_BLOCK = 256
"""Queued items per block when rank_queue measures the density of items routed before it was recorded."""


@dataclass(frozen=True)
class TaskLabeler:
    """What turns the teacher's raw scores (and an item's embedding) into the probabilities items are routed on."""

    stack: Stack | None
    probe: AnyProbe | None
    calibration: Calibration | None
    """Before any stack: the teacher's calibration on the uniform reviews so far (None with too few)."""
    look: int | None
    """The look that fitted the stack; None before the first."""

    def probs(self, raw_probs: FloatArray, items: ProbeInput) -> FloatArray:
        """(n, k) probabilities of n items from the teacher's raw (n, k) scores and what the probe reads of them."""
        raw = np.asarray(raw_probs, dtype=np.float64)
        if self.stack is not None:
            return StackedLabeler(stack=self.stack, probe=self.probe).predict(raw, items)
        if self.calibration is not None:
            return self.calibration.apply(np.log(np.clip(raw, 1e-300, None)))
        return raw

    @classmethod
    def none(cls) -> TaskLabeler:
        """No labeler yet: the teacher's raw scores as they are."""
        return cls(stack=None, probe=None, calibration=None, look=None)

    @property
    def fitted(self) -> bool:
        """Whether it changes the teacher's raw scores at all (a stack or a calibration)."""
        return self.stack is not None or self.calibration is not None

    @property
    def reads_probe(self) -> bool:
        return self.probe is not None


@dataclass(frozen=True)
class Applied:
    labeler: TaskLabeler
    policy: Policy
    """The threshold of ``labeler`` certified at its look (None: cold start); audits stop once the review budget
    is spent, and cold-start draws once no certificate of the target is in reach within it."""


def _labeler(row: LabelerVersion) -> TaskLabeler:
    return TaskLabeler(
        stack=Stack.from_json(row.stack),
        probe=probe_from_json(row.probe) if row.probe is not None else None,
        calibration=None,
        look=row.look,
    )


def limits(task: Task, *, min_reviews: int) -> Policy:
    """The task's policy before any threshold: its targets, audit share and veto limits."""
    return fit_policy(
        confidences=[],
        correct=[],
        epsilon=task.epsilon,
        delta=task.delta,
        audit_share=task.audit_share,
        min_reviews=min_reviews,
    )


def span_limits(session: Session, task: Task, *, min_reviews: int) -> Policy:
    """A spans task's policy: its limits, without audits once its review budget is spent. No threshold of the
    teacher's is certified for span sets: a promoted tagger's comes from its gold (cascade.student_policy)."""
    policy = limits(task, min_reviews=min_reviews)
    if task.review_budget is not None and review.human_count(session, task_id=task.id) >= task.review_budget:
        return replace(policy, audit_share=0.0)
    return policy


def span_policy(session: Session, task: Task, *, min_reviews: int) -> Policy:
    """What accepts a spans task's sets: span_limits with the promoted tagger's threshold, certified on its gold
    (cascade.student_policy); no threshold before a tagger."""
    policy = span_limits(session, task, min_reviews=min_reviews)
    tagger = students.promoted(session, task_id=task.id)
    return policy if tagger is None else student_policy(policy, tagger.metrics)


def _usable(reviews: Sequence[UniformReview], names: Sequence[str]) -> list[UniformReview]:
    """The uniform reviews a labeler can be fitted or tested on: a label the task has, the teacher's score over all
    its labels, and an embedding."""
    return [r for r in reviews if r.human in names and len(r.raw_probs) == len(names) and r.embedding is not None]


def applied(session: Session, task: Task, *, reviews: Sequence[UniformReview], min_reviews: int) -> Applied:
    """The labeler and policy that route the task's items now; ``reviews`` are its uniform reviews
    (history.uniform_reviews), read once by the caller."""
    humans = review.human_count(session, task_id=task.id)
    spent = task.review_budget is not None and humans >= task.review_budget
    policy = limits(task, min_reviews=min_reviews)
    if spent:
        policy = replace(policy, audit_share=0.0)
    newest = labelers.latest(session, task_id=task.id)
    if spent or not _target_in_reach(task, newest, reviews, min_reviews=min_reviews, humans=humans):
        policy = replace(policy, uniform_draws=False)
    certified = labelers.latest(session, task_id=task.id, certified=True)
    if certified is not None:
        certified_policy = replace(
            policy, threshold=certified.threshold, error_bound=certified.error_bound, fitted_on=certified.certified_on
        )
        return Applied(labeler=_labeler(certified), policy=certified_policy)
    if newest is not None:
        return Applied(labeler=_labeler(newest), policy=replace(policy, draw_floor=newest.floor))
    return Applied(
        labeler=TaskLabeler(stack=None, probe=None, calibration=_calibration(task, reviews, min_reviews), look=None),
        policy=policy,
    )


def _reviews_left(task: Task, humans: int) -> int | None:
    return None if task.review_budget is None else max(0, task.review_budget - humans)


def _first_fit(task: Task, *, have: int, humans: int, min_reviews: int) -> int:
    """Uniform reviews the first candidate waits for (certification.first_fit)."""
    return first_fit(
        reviews_left=_reviews_left(task, humans),
        have=have,
        epsilon=task.epsilon,
        delta=task.delta,
        min_reviews=min_reviews,
        target_coverage=task.target_coverage,
    )


def _plan(
    task: Task,
    look: int,
    *,
    spent: float,
    reviews_left: int | None,
    min_reviews: int,
    floor: SliceFloor | None = None,
) -> LookPlan | None:
    return plan_look(
        look,
        delta=task.delta,
        spent=spent,
        reviews_left=reviews_left,
        epsilon=task.epsilon,
        min_reviews=min_reviews,
        target_coverage=task.target_coverage,
        floor=floor,
    )


def _floor(row: LabelerVersion) -> SliceFloor | None:
    if row.floor_share is None:
        return None
    return SliceFloor(floor=row.floor, share=row.floor_share, sure_share=row.sure_share or 0.0)


def _target_in_reach(
    task: Task,
    newest: LabelerVersion | None,
    reviews: Sequence[UniformReview],
    *,
    min_reviews: int,
    humans: int,
) -> bool:
    """Whether a task with a review budget can still expect a look to certify (the coverage it aims at: the
    target, or all the candidate can reach if less) before the budget runs out (True for a task without a budget,
    unless the newest candidate has nothing to aim at): cold-start draws past that point would buy no
    certificate, so the budget is better spent on the labels likeliest wrong."""
    left = _reviews_left(task, humans)
    if left is None:
        return True
    usable = _usable(reviews, tasks.label_values(task))
    if newest is None:
        # The first candidate needs its labels to fit on, and then a look the budget left after them can pay for.
        need = max(0, _first_fit(task, have=len(usable), humans=humans, min_reviews=min_reviews) - len(usable))
        first = _plan(task, 0, spent=0.0, reviews_left=left - need, min_reviews=min_reviews)
        return need <= left and first is not None
    floor = _floor(newest)
    if floor is None or not floor.reaches(task.target_coverage):
        return False  # nothing it could accept, or not as much as the target: a slice would not buy what it is for
    if newest.look_size is None or newest.look_size - len(_slice(newest, usable)) > left:
        return False  # the budget paid for no look, or its slice is beyond what is left
    if task.target_coverage is None or newest.fitted_on < FIT_MIN:
        return True  # no target, or nothing yet to judge the labeler by
    # Out of reach when the candidate's cross-fitted error above the target's threshold already reaches epsilon;
    # its projected slice is only reported (one error more or less in a few hundred labels moves it a whole look).
    return newest.expected_slice is not None


def _calibration(task: Task, reviews: Sequence[UniformReview], min_reviews: int) -> Calibration | None:
    """The teacher's calibration on the uniform reviews in the current prompt regime; None until ``min_reviews``."""
    names = tasks.label_values(task)
    usable = [r for r in _usable(reviews, names) if r.current_regime]
    if len(usable) < min_reviews:
        return None
    return fit_calibration(
        logits_or_logprobs=np.log(np.clip(_raw(usable), 1e-300, None)), labels=[names.index(r.human) for r in usable]
    )


def run_look(
    session: Session, task: Task, *, reviews: Sequence[UniformReview], pool: LabeledPool, min_reviews: int
) -> LabelerVersion | None:
    """Take the newest candidate's look once its fresh slice (uniform reviews labeled after it was fitted) has
    reached the look's size, and fit the next candidate after every look (the first once there are a look's worth
    of uniform reviews to fit on). Returns the candidate whose look was taken now, else None. A candidate's probe
    also learns from every other human label it could see (``pool`` holds them with their embeddings)."""
    names = tuple(tasks.label_values(task))
    usable = _usable(reviews, names)
    newest = labelers.latest(session, task_id=task.id)
    humans = review.human_count(session, task_id=task.id)
    if newest is None:
        if len(usable) >= _first_fit(task, have=len(usable), humans=humans, min_reviews=min_reviews):
            _add_candidate(session, task, 0, usable, pool, names, min_reviews=min_reviews, humans=humans)
        return None
    if newest.looked_at is not None:
        _add_candidate(session, task, newest.look + 1, usable, pool, names, min_reviews=min_reviews, humans=humans)
        return None
    floor = _floor(newest)
    if floor is None:
        # Nothing it could accept is worth a slice: it waits for none, and once as many new human labels have come
        # as it was fitted on (min_reviews at least), it retires (a look that spends nothing) for a candidate
        # fitted on them.
        unseen = labelers.human_labels_since(session, task_id=task.id, label_id=newest.fitted_through or 0)
        if unseen >= max(min_reviews, newest.fitted_on) and labelers.record_look(
            session, newest, threshold=None, error_bound=None, certified_on=0
        ):
            _add_candidate(session, task, newest.look + 1, usable, pool, names, min_reviews=min_reviews, humans=humans)
        return None
    if newest.look_size is None:
        # Its budget paid for no look when it was fitted; a raised budget may pay for one now.
        plan = _plan(
            task,
            newest.look,
            spent=labelers.delta_spent(session, task_id=task.id),
            reviews_left=_reviews_left(task, humans),
            min_reviews=min_reviews,
            floor=floor,
        )
        if plan is not None:
            labelers.plan_look(session, newest, look_size=plan.size, delta_spent=plan.level)
        return None
    fresh = _slice(newest, usable)
    if len(fresh) < newest.look_size:
        return None
    probs = _labeler(newest).probs(_raw(fresh), _items(fresh))
    policy = fit_policy(
        confidences=probs.max(axis=1),
        correct=probs.argmax(axis=1) == np.asarray([names.index(r.human) for r in fresh]),
        vetoed=[r.vetoed for r in fresh],
        epsilon=task.epsilon,
        delta=newest.delta_spent,
        audit_share=task.audit_share,
        min_reviews=min(min_reviews, len(fresh)),
        start_share=floor.accepted_share(task.target_coverage),
        floor=floor.floor,
    )
    if not labelers.record_look(
        session, newest, threshold=policy.threshold, error_bound=policy.error_bound, certified_on=len(fresh)
    ):
        return None
    _add_candidate(session, task, newest.look + 1, usable, pool, names, min_reviews=min_reviews, humans=humans)
    return newest


def _fresh(candidate: LabelerVersion, usable: Sequence[UniformReview]) -> list[UniformReview]:
    """The uniform reviews labeled after ``candidate`` was fitted: its fresh slice (none for a labeler from
    before fresh slices, whose labels cannot be told apart)."""
    if candidate.fitted_through is None:
        return []
    return [r for r in usable if r.label_id > candidate.fitted_through]


def _slice(candidate: LabelerVersion, usable: Sequence[UniformReview]) -> list[UniformReview]:
    """Its fresh slice: the fresh uniform reviews it is at least as sure of as its floor (drawn uniformly within
    that stratum, they sample every threshold its look tests)."""
    fresh = _fresh(candidate, usable)
    if not fresh or candidate.floor <= 0.0:
        return fresh
    confidence = _labeler(candidate).probs(_raw(fresh), _items(fresh)).max(axis=1)
    return [r for r, c in zip(fresh, confidence, strict=True) if c >= candidate.floor]


def _add_candidate(
    session: Session,
    task: Task,
    look: int,
    usable: Sequence[UniformReview],
    pool: LabeledPool,
    names: tuple[str, ...],
    *,
    min_reviews: int,
    humans: int,
) -> None:
    """Fit the candidate look ``look`` will test, on every label there is now, and plan its look (none when the
    review budget pays for none)."""
    through = labelers.newest_human_label(session, task_id=task.id)
    fitting = [r for r in usable if r.current_regime and r.label_id <= through]
    fitted = _fit(fitting, pool, names, tasks.kind_of(task))
    labels = [names.index(r.human) for r in fitting]
    floor = candidate_floor(fit_probs=fitted.fit_probs, labels=labels, epsilon=task.epsilon)
    plan = (
        None
        if floor is None
        else _plan(
            task,
            look,
            spent=labelers.delta_spent(session, task_id=task.id),
            reviews_left=_reviews_left(task, humans),
            min_reviews=min_reviews,
            floor=floor,
        )
    )
    labelers.add_candidate(
        session,
        task_id=task.id,
        look=look,
        stack=fitted.stack.to_json(),
        probe=fitted.probe.to_json() if fitted.probe is not None else None,
        delta_spent=0.0 if plan is None else plan.level,
        look_size=None if plan is None else plan.size,
        floor=0.0 if floor is None else floor.floor,
        floor_share=None if floor is None else floor.share,
        sure_share=None if floor is None else floor.sure_share,
        fitted_on=len(fitting),
        fitted_through=through,
        expected_slice=None
        if floor is None
        else expected_slice(
            fit_probs=fitted.fit_probs,
            labels=labels,
            floor=floor,
            target_coverage=task.target_coverage,
            epsilon=task.epsilon,
            delta=task.delta,
            min_reviews=min_reviews,
            next_look=look,
        ),
    )


def _raw(reviews: Sequence[UniformReview]) -> FloatArray:
    return np.asarray([r.raw_probs for r in reviews], dtype=np.float64)


def _items(reviews: Sequence[UniformReview]) -> ProbeInput:
    return ProbeInput.of(np.asarray([r.embedding for r in reviews], dtype=np.float64), [r.text for r in reviews])


def _fit(fitting: list[UniformReview], pool: LabeledPool, names: tuple[str, ...], kind: TaskKind) -> StackedLabeler:
    """The stack over the teacher and the probe, fitted on the uniform reviews; the probe also learns from every
    other human label (items reviewed for looking wrong teach the probe, but would bias the stack)."""
    if len(fitting) < FIT_MIN:
        return StackedLabeler(stack=Stack(sources=("teacher",), weights=(1.0,), bias=(0.0,) * len(names)), probe=None)
    embeddings, examples, labels = pool.arrays()
    fit_ids = {r.item_id for r in fitting}
    extra = [
        i
        for i, (item_id, source, label) in enumerate(pool.provenance())
        if source in HUMAN_SOURCES and label in names and item_id not in fit_ids
    ]
    return fit_stacked(
        teacher=_raw(fitting),
        items=_items(fitting),
        labels=np.asarray([names.index(r.human) for r in fitting], dtype=np.int64),
        n_labels=len(names),
        sources=("teacher", "probe"),
        extra=ProbeInput.of(embeddings[extra], [examples[i].text for i in extra]) if extra else None,
        extra_labels=np.asarray([names.index(labels[i]) for i in extra], dtype=np.int64) if extra else None,
        kind=kind,
    )


def expected_reviews_to_target(session: Session, task: Task, *, reviews: Sequence[UniformReview]) -> int | None:
    """More uniform reviews the newest candidate's look is expected to need to certify the coverage it aims at (the
    task's target, or all it can reach if less): its ``expected_slice`` less the slice reviews it already has; None
    without a target or a candidate, or when nothing is in its reach."""
    newest = labelers.latest(session, task_id=task.id)
    if task.target_coverage is None or newest is None or newest.expected_slice is None:
        return None
    return max(0, newest.expected_slice - len(_slice(newest, _usable(reviews, tasks.label_values(task)))))


def _scorable(queued: Sequence[QueuedForReview], names: Sequence[str]) -> list[QueuedForReview]:
    """The queued items whose stored teacher scores cover the task's labels as they are now."""
    return [q for q in queued if len(q.prediction.raw_probs) == len(names)]


def _queued_inputs(rows: Sequence[QueuedForReview]) -> tuple[FloatArray, ProbeInput]:
    """What a labeler reads of queued items: the teacher's raw scores (n, k), and the embeddings and texts."""
    raw = np.asarray([q.prediction.raw_probs for q in rows], dtype=np.float64)
    return raw, ProbeInput.of(np.stack([q.embedding for q in rows]), [q.text for q in rows])


def rescore_queue(session: Session, task: Task, now: Applied) -> int:
    """Accept the items waiting for review that the newly certified labeler is sure of (their stored scores and
    embeddings recomputed with it, the same rule as for new items); returns how many left the queue. Uniform draws
    stay: they are the sample that measures and certifies, reviewed whatever their score."""
    threshold = now.policy.threshold
    if threshold is None or now.labeler.look is None:
        return 0
    names = tasks.label_values(task)
    waiting = [q for q in _scorable(items.rescore_candidates(session, task_id=task.id), names) if not q.vetoed]
    if not waiting:
        return 0
    raw, inputs = _queued_inputs(waiting)
    probs = now.labeler.probs(raw, inputs)
    accepted = 0
    for queued, row in zip(waiting, probs, strict=True):
        if float(row.max()) >= threshold:
            items.accept_rescored(
                session,
                task_id=task.id,
                queued=queued,
                probs=tuple(float(p) for p in row),
                label=names[int(row.argmax())],
                labeler=now.labeler.look,
            )
            accepted += 1
    return accepted


def rank_queue(
    task: Task, *, reviews: Sequence[UniformReview], pool: LabeledPool, queued: Sequence[QueuedForReview]
) -> dict[int, tuple[float, str]]:
    """New review priorities (and their explanations) of the ``queued`` items: the chance that the label routing
    gave them is wrong, under the labeler refitted now (the stack on the uniform ``reviews`` and its probe on every
    human label in ``pool``, as a candidate is fitted). Routing ranked them by the labeler of their day; every
    review since taught the probe, so the next reviews go where it now doubts the label most (the rerank_queue
    job)."""
    names = tuple(tasks.label_values(task))
    rows = _scorable(queued, names)
    if not rows:
        return {}
    kind = tasks.kind_of(task)
    ranker = _fit([r for r in _usable(reviews, names) if r.current_regime], pool, names, kind)
    raw, inputs = _queued_inputs(rows)
    probs = ranker.predict(raw, inputs)
    # A stack without a probe (too few uniform reviews) gets the probe's opinion as routing gives it.
    probe = None if ranker.probe is not None else pool.probe(names, kind=kind)
    support = None if probe is None else probe.predict(inputs)
    # The label that ships unless someone reviews it is the one routing gave: its chance of being wrong now.
    routed = [names.index(q.prediction.label) if q.prediction.label in names else -1 for q in rows]
    predicted = np.where(np.asarray(routed) >= 0, routed, probs.argmax(axis=1))
    wrong = wrong_chance(probs=probs, predicted=predicted, support=support)
    typical = np.asarray([q.density if q.density is not None else np.nan for q in rows], dtype=np.float64)
    missing = np.flatnonzero(np.isnan(typical))
    for block in range(0, missing.size, DENSITY_BLOCK):
        # Routed before density was recorded: measured as routing measures it, among a chunk of items (here the
        # queued ones like them); among all of them would cost the square of the queue at every rerank.
        rows_of = missing[block : block + DENSITY_BLOCK]
        typical[rows_of] = density(embeddings=inputs.embeddings[rows_of])
    humans = sum(1 for _, source, _ in pool.provenance() if source in HUMAN_SOURCES)
    ranked = {}
    for q, chance, dense in zip(rows, wrong, typical, strict=True):
        why = explain_priority(wrong_chance=float(chance), density=float(dense), probed=True)
        ranked[q.item_id] = (
            review_priority(wrong_chance=float(chance), density=float(dense)),
            f"{why} Ranked again after {humans} human labels.",
        )
    return ranked
