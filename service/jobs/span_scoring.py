"""Score one chunk of a spans task: the promoted span tagger first, the teacher's structured answers for what it
is not sure of, and the routing decision for every item.

The error the filter bounds is per item: an accepted span set is wrong when it differs from the reviewer's. The
tagger's set confidence is what its cascade threshold was certified on (its gold, at training, as for any
student), so a tagger's sets at or above it are accepted, less a blind audit share; what it is unsure of goes to
the teacher and then to review by its chance of being wrong (``below_threshold``). The teacher has no certified
threshold for span sets (a tiny teacher's whole answers are rarely all right), so before a tagger its proposals
all go to review in random order (``span_proposal``), drawn on the review page for the reviewer to correct: a
uniform sample, on which the first tagger's threshold can be certified. Few-shot examples are the nearest
reviewed or imported items, shown with their answers.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.jobs.context import WorkerContext
from service.jobs.scoring import ChunkPlan, audit_draw, shots_for
from service.pipeline.pool import LabeledPool
from service.pipeline.review_order import density as item_density
from service.pipeline.review_order import explain_priority, review_priority
from service.pipeline.route import STUDENT_UNSURE, Decision, Signals, route
from service.pipeline.span_answers import propose_spans
from service.ports import FloatArray, TaskDef
from service.store.items import ItemOutcome, MachineScore, RecordedSignals

PROPOSED = Decision(accept=False, reasons=("span_proposal",))
ESCALATED = Decision(accept=False, reasons=("below_threshold",))
"""The tagger was unsure: the teacher's proposal waits for review by its chance of being wrong."""
PROPOSAL_ORDER = (
    "Spans proposed by the teacher: every proposal is reviewed, in random order, so that the reviewed items are a "
    "fair sample to certify the span student's threshold on."
)


@dataclass(frozen=True)
class _Proposed:
    score: MachineScore
    label: str
    """The span set's stored name."""
    confidence: float
    problem: str | None = None
    shots: int | None = None
    deferred: bool = False
    """The tagger was unsure and the teacher was not asked (bulk labeling with escalation deferred)."""


def score_spans_chunk(ctx: WorkerContext, task: TaskDef, plan: ChunkPlan, pool: LabeledPool) -> list[ItemOutcome]:
    with ctx.metered("embedder", len(plan.texts)):
        embeddings = ctx.embedder.embed(plan.texts)
    proposed = _cascade(ctx, task, plan, pool, embeddings)
    density = item_density(embeddings=embeddings)
    outcomes = []
    for index, item_id in enumerate(plan.item_ids):
        scored = proposed[index]
        signals = Signals(confidence=scored.confidence, margin=scored.confidence)
        draw = audit_draw(item_id)
        wrong, typical = 1.0 - scored.confidence, float(density[index])
        recorded = RecordedSignals(
            confidence=scored.confidence, margin=scored.confidence, wrong_chance=wrong, density=typical
        )
        if scored.score.source == "student" and not scored.deferred and plan.student_policy is not None:
            decision = route(signals=signals, policy=plan.student_policy, audit_draw=draw)
            audit = "audit_sample" in decision.reasons
            if audit:
                recorded["would_accept"] = route(signals=signals, policy=plan.student_policy, audit_draw=1.0).accept
            priority = review_priority(wrong_chance=wrong, density=typical, audit=audit)
            explanation = explain_priority(wrong_chance=wrong, density=typical, audit=audit)
        elif scored.deferred or plan.student_policy is not None:
            decision = STUDENT_UNSURE if scored.deferred else ESCALATED
            priority = review_priority(wrong_chance=wrong, density=typical)
            explanation = explain_priority(wrong_chance=wrong, density=typical)
        else:
            decision, explanation = PROPOSED, PROPOSAL_ORDER
            priority = review_priority(wrong_chance=wrong, density=typical, cold_start_draw=draw)
        if scored.shots is not None:
            recorded["shots"] = scored.shots
        if scored.problem is not None:
            recorded["answer_problem"] = scored.problem
        outcomes.append(
            ItemOutcome(
                item_id=item_id,
                embedding=embeddings[index],
                score=scored.score,
                label=scored.label,
                confidence=scored.confidence,
                decision=decision,
                signals=recorded,
                priority=priority,
                priority_explanation=explanation,
            )
        )
    return outcomes


def _cascade(
    ctx: WorkerContext, task: TaskDef, plan: ChunkPlan, pool: LabeledPool, embeddings: FloatArray
) -> list[_Proposed]:
    proposed: list[_Proposed | None] = [None] * len(plan.texts)
    if plan.student_path is not None and plan.student_policy is not None:
        tagger = ctx.tagger(plan.student_path)
        threshold = plan.student_policy.threshold
        with ctx.metered("student", len(plan.texts)) as meter:
            sets = tagger.predict_spans(plan.texts)
            sure = [threshold is not None and confidence >= threshold for _, confidence in sets]
            meter.answered = len(plan.texts) if not plan.escalate_to_teacher else sum(sure)
        for index, ((name, confidence), kept) in enumerate(zip(sets, sure, strict=True)):
            if kept or not plan.escalate_to_teacher:
                score = MachineScore(
                    source="student",
                    model=f"student:{tagger.version}",
                    template_sha="",
                    prompt_sha="",
                    raw_probs=(),  # the tagger gives the set's confidence, not each span's
                    probs=(confidence,),
                    truncated=False,
                )
                proposed[index] = _Proposed(score=score, label=name, confidence=confidence, deferred=not kept)
    escalated = [index for index, scored in enumerate(proposed) if scored is None]
    if escalated:
        for index, scored in zip(escalated, _teacher(ctx, task, plan, pool, embeddings, escalated), strict=True):
            proposed[index] = scored
    return [scored for scored in proposed if scored is not None]


def _teacher(
    ctx: WorkerContext, task: TaskDef, plan: ChunkPlan, pool: LabeledPool, embeddings: FloatArray, indices: list[int]
) -> list[_Proposed]:
    """The teacher's span sets of the items at ``indices``, from structured answers after kNN few-shot prompts."""
    settings = ctx.settings.teacher
    examples = shots_for(task, pool, embeddings, indices, settings.few_shot)
    with ctx.metered("teacher", len(indices)):
        proposals = propose_spans(
            ctx.teacher,
            task,
            [plan.texts[i] for i in indices],
            examples,
            prompts_dir=ctx.settings.prompts_dir,
            max_text_tokens=settings.max_text_tokens,
        )
    results = []
    for (answer, prompt, truncated), shots in zip(proposals, examples, strict=True):
        score = MachineScore(
            source="teacher",
            model=ctx.teacher.model_name,
            template_sha=prompt.template_sha,
            prompt_sha=prompt.prompt_sha,
            raw_probs=answer.span_confidences,
            probs=(answer.confidence,),
            truncated=truncated,
        )
        results.append(_Proposed(score, answer.name, answer.confidence, problem=answer.problem, shots=len(shots)))
    return results
