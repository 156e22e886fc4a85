"""Score one chunk through the cascade: the promoted student first, the teacher for what it is unsure of,
then the signals and the routing decision for every item."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from service.jobs.context import WorkerContext
from service.pipeline import kinds
from service.pipeline import signals as sig
from service.pipeline.cascade import split_by_confidence
from service.pipeline.kinds import machine_labels
from service.pipeline.policy import Policy
from service.pipeline.pool import LabeledPool
from service.pipeline.probe import ProbeInput
from service.pipeline.render import few_shot_examples
from service.pipeline.review_order import density as item_density
from service.pipeline.review_order import explain_priority, review_priority, wrong_chance
from service.pipeline.route import STUDENT_UNSURE, Signals, route
from service.pipeline.teacher_scoring import ItemScore, batch_prior_of, recalibrate, score_items
from service.ports import Example, FloatArray, TaskDef
from service.store.items import ItemOutcome, MachineScore, RecordedSignals
from service.task_policy import TaskLabeler

MIN_PRIOR_ITEMS = 16
NEIGHBOURS = 5


@dataclass(frozen=True)
class ChunkPlan:
    task_id: int
    item_ids: list[int]
    texts: list[str]
    policy: Policy
    student_path: str | None
    student_policy: Policy | None
    """Routes the promoted student's labels (see cascade.student_policy); its threshold also decides which items
    the student keeps. None without a promoted student."""
    labeler: TaskLabeler = field(default_factory=TaskLabeler.none)
    """Turns the teacher's raw scores into the probabilities items are routed on (see task_policy); with neither a
    stack nor a calibration yet, batch calibration stands in for zero-shot prompts."""
    escalate_to_teacher: bool = True
    """False defers what the student is unsure of: its label is kept, not accepted, with reason student_unsure."""


@dataclass(frozen=True)
class _Machine:
    score: MachineScore
    student_probs: tuple[float, ...] | None
    """The student's probabilities of an item it escalated to the teacher."""
    deferred: bool = False
    """The student was unsure and the teacher was not asked."""
    shots: int | None = None
    """Few-shot examples in the teacher's prompt; None for the student."""


def score_chunk(ctx: WorkerContext, task: TaskDef, plan: ChunkPlan, pool: LabeledPool) -> list[ItemOutcome]:
    with ctx.metered("embedder", len(plan.texts)):
        embeddings = ctx.embedder.embed(plan.texts)
    machine = _cascade(ctx, task, plan, pool, embeddings)
    probs = np.asarray([scored.score.probs for scored in machine], dtype=np.float64)
    predicted, confidence = machine_labels(probs=probs, kind=task.kind)
    margins = sig.margin(probs=probs)
    neighbours, ood = _neighbour_signals(task, pool, embeddings, predicted)
    density = item_density(embeddings=embeddings)
    names = kinds.columns(task.kind, task.label_names)
    probe = pool.probe(names, kind=task.kind)
    # A labeler that reads the probe has it in its probabilities already; count it once.
    support = (
        None if probe is None or plan.labeler.reads_probe else probe.predict(ProbeInput.of(embeddings, plan.texts))
    )
    wrong = wrong_chance(probs=probs, predicted=predicted, support=support)
    disagrees = _student_disagreement(machine, probs)
    results = []
    for index, item_id in enumerate(plan.item_ids):
        scored = machine[index]
        signals = Signals(
            confidence=float(confidence[index]),
            margin=float(margins[index]),
            neighbour_disagreement=None if neighbours is None else float(neighbours[index]),
            student_disagreement=disagrees[index],
            ood_distance=None if ood is None else float(ood[index]),
        )
        uniform = audit_draw(item_id)
        policy = plan.student_policy if scored.score.source == "student" and plan.student_policy else plan.policy
        decision = STUDENT_UNSURE if scored.deferred else route(signals=signals, policy=policy, audit_draw=uniform)
        audit = "audit_sample" in decision.reasons
        # Cold-start reviews certify the threshold only as a uniform sample: they are queued in random order.
        draw = uniform if "cold_start" in decision.reasons else None
        order: dict[str, Any] = {
            "wrong_chance": float(wrong[index]),
            "density": float(density[index]),
            "audit": audit,
            "cold_start_draw": draw,
        }
        recorded = RecordedSignals(
            confidence=signals.confidence,
            margin=signals.margin,
            wrong_chance=float(wrong[index]),
            density=float(density[index]),
        )
        if audit:
            recorded["would_accept"] = route(signals=signals, policy=policy, audit_draw=1.0).accept
        if scored.score.source == "teacher" and plan.labeler.look is not None:
            recorded["labeler"] = plan.labeler.look
        if signals.neighbour_disagreement is not None:
            recorded["neighbour_disagreement"] = signals.neighbour_disagreement
        if signals.student_disagreement is not None:
            recorded["student_disagreement"] = signals.student_disagreement
        if signals.ood_distance is not None:
            recorded["ood_distance"] = signals.ood_distance
        if support is not None:
            recorded["probe_support"] = float(support[index, predicted[index]])
        if scored.shots is not None:
            recorded["shots"] = scored.shots
        results.append(
            ItemOutcome(
                item_id=item_id,
                embedding=embeddings[index],
                score=scored.score,
                label=names[int(predicted[index])],
                confidence=signals.confidence,
                decision=decision,
                signals=recorded,
                priority=review_priority(**order),
                priority_explanation=explain_priority(**order, probed=support is not None or plan.labeler.reads_probe),
            )
        )
    return results


def _student_disagreement(machine: list[_Machine], probs: FloatArray) -> list[bool | None]:
    """Whether the promoted student's top label differs from the teacher's, for items the teacher labeled after
    the student escalated them; None elsewhere."""
    compared = [
        i for i, scored in enumerate(machine) if scored.student_probs is not None and scored.score.source == "teacher"
    ]
    result: list[bool | None] = [None] * len(machine)
    if compared:
        student_probs = np.asarray([machine[i].student_probs for i in compared], dtype=np.float64)
        flags = sig.student_disagreement(student_probs=student_probs, teacher_probs=probs[compared])
        for i, flag in zip(compared, flags, strict=True):
            result[i] = bool(flag)
    return result


def _neighbour_signals(
    task: TaskDef, pool: LabeledPool, embeddings: FloatArray, predicted: npt.NDArray[np.int64]
) -> tuple[FloatArray | None, FloatArray | None]:
    """Neighbour disagreement and out-of-distribution distance, once the pool has enough labeled items."""
    if len(pool) < NEIGHBOURS:
        return None, None
    pool_embeddings, _, pool_labels = pool.arrays()
    index = {name: i for i, name in enumerate(kinds.columns(task.kind, task.label_names))}
    pool_indices = [index.get(label, -1) for label in pool_labels]
    disagreement = sig.neighbour_disagreement(
        query_emb=embeddings,
        labeled_emb=pool_embeddings,
        labeled_labels=pool_indices,
        predicted=predicted,
        k=NEIGHBOURS,
    )
    return disagreement, sig.ood_distance(query_emb=embeddings, labeled_emb=pool_embeddings)


def _cascade(
    ctx: WorkerContext, task: TaskDef, plan: ChunkPlan, pool: LabeledPool, embeddings: FloatArray
) -> list[_Machine]:
    machine: list[_Machine | None] = [None] * len(plan.texts)
    student_probs: FloatArray | None = None
    if plan.student_path is not None and plan.student_policy is not None:
        student = ctx.student(plan.student_path)
        with ctx.metered("student", len(plan.texts)) as meter:
            student_probs = student.predict_proba(plan.texts)
            sure = set(
                split_by_confidence(probs=student_probs, threshold=plan.student_policy.threshold).student.tolist()
            )
            meter.answered = len(plan.texts) if not plan.escalate_to_teacher else len(sure)
        model = f"student:{student.version}"
        for index, row in enumerate(student_probs):
            if index in sure or not plan.escalate_to_teacher:
                values = tuple(float(p) for p in row)
                machine[index] = _Machine(
                    score=MachineScore(
                        source="student",
                        model=model,
                        template_sha="",
                        prompt_sha="",
                        raw_probs=values,
                        probs=values,
                        truncated=False,
                    ),
                    student_probs=None,
                    deferred=index not in sure,
                )
    escalated = [index for index, scored in enumerate(machine) if scored is None]
    if escalated:
        teacher_scores, shots = _teacher(ctx, task, plan, pool, embeddings, escalated)
        for index, score, count in zip(escalated, teacher_scores, shots, strict=True):
            machine[index] = _Machine(
                score=MachineScore(
                    source="teacher",
                    model=ctx.teacher.model_name,
                    template_sha=score.template_sha,
                    prompt_sha=score.prompt_sha,
                    raw_probs=score.raw_probs,
                    probs=score.probs,
                    truncated=score.truncated,
                ),
                student_probs=tuple(float(p) for p in student_probs[index]) if student_probs is not None else None,
                shots=count,
            )
    return [scored for scored in machine if scored is not None]


def _teacher(
    ctx: WorkerContext, task: TaskDef, plan: ChunkPlan, pool: LabeledPool, embeddings: FloatArray, indices: list[int]
) -> tuple[list[ItemScore], list[int]]:
    """The teacher's scores of the items at ``indices`` and the number of few-shot examples in each prompt."""
    settings = ctx.settings.teacher
    examples = shots_for(task, pool, embeddings, indices, settings.few_shot)
    # Batch calibration helps zero-shot prompts only; with kNN examples it hurt (SMS macro-F1 0.89 -> 0.78, see
    # bench/results/teacher_sms_spam.json), so few-shot scores stay raw until the fitted calibration takes over.
    zero_shot = len(pool) == 0
    recent = ctx.recent(plan.task_id)
    prior = np.mean(np.stack(list(recent)), axis=0) if zero_shot and len(recent) >= MIN_PRIOR_ITEMS else None
    with ctx.metered("teacher", len(indices)):
        scores = score_items(
            ctx.teacher,
            task,
            [plan.texts[i] for i in indices],
            examples,
            template_name=task.template,
            prompts_dir=ctx.settings.prompts_dir,
            prior=prior,
            max_text_tokens=settings.max_text_tokens,
        )
    if zero_shot:
        if prior is None:
            scores = recalibrate(scores, batch_prior_of(scores), task)
        recent.extend(np.asarray(score.raw_probs) for score in scores)
    if plan.labeler.fitted:
        items = ProbeInput.of(embeddings[indices], [plan.texts[i] for i in indices])
        fitted = plan.labeler.probs(np.asarray([score.raw_probs for score in scores]), items)
        scores = [
            replace(
                score,
                probs=tuple(float(p) for p in row),
                label=kinds.columns(task.kind, task.label_names)[int(row.argmax())],
                confidence=float(row.max()),
            )
            for score, row in zip(scores, fitted, strict=True)
        ]
    return scores, [len(shots) for shots in examples]


def shots_for(
    task: TaskDef, pool: LabeledPool, embeddings: FloatArray, indices: list[int], k: int
) -> list[list[Example]]:
    """The few-shot examples of the items at ``indices``: their nearest labeled items, or the task's own examples
    while nothing is labeled."""
    if not len(pool):
        return [list(task.examples) for _ in indices]
    pool_embeddings, pool_examples, _ = pool.arrays()
    return [few_shot_examples(embeddings[i], pool_embeddings, pool_examples, k) for i in indices]


def audit_draw(item_id: int) -> float:
    """A uniform draw fixed per item, so a retried chunk routes every item the same way."""
    return random.Random(item_id).random()
