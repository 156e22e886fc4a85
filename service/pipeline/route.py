"""Accept a machine label or send the item to human review, with every reason that applied."""

from __future__ import annotations

from dataclasses import dataclass

from service.pipeline.policy import Policy

REASONS: tuple[str, ...] = (
    "cold_start",
    "no_certificate",
    "below_floor",
    "below_threshold",
    "neighbour_disagreement",
    "student_disagreement",
    "out_of_distribution",
    "audit_sample",
    "student_unsure",
    "rescored",
    "span_proposal",
)
"""``no_certificate``: no threshold is certified and none is expected within the task's review budget, so the item
waits for review by its chance of being wrong instead of as a uniform draw. ``below_floor``: in cold start, the
newest candidate's confidence is below its slice floor, so its look could never accept the item: it waits for review
by its chance of being wrong, not as a uniform draw. ``below_threshold``: the calibrated
confidence is below the certified threshold (stored as ``low_margin``
before it was renamed). ``audit_sample``: drawn at random among all routed items for a blind review that measures
and certifies the error. ``student_unsure``: the student was not sure and the teacher was not asked (bulk labeling
with escalation deferred); the student's label is kept, not accepted. ``rescored``: the one reason an accepted
label carries: it waited for review until a newer certified labeler was sure of it. ``span_proposal``: a spans
task's teacher answer, which no certified threshold accepts: reviewed in random order, with the teacher's spans
shown for the reviewer to correct, so that the reviewed items are a uniform sample to certify a span student's
threshold on (the student, which is never shown, is what they test)."""


RENAMED_REASONS = {"low_margin": "below_threshold"}
"""Reasons stored under an older name: history keeps what was written, readers see the current name."""


def stored_reasons(reasons: list[object]) -> list[str]:
    """Reasons as read back from a stored decision, under their current names."""
    return [RENAMED_REASONS.get(str(reason), str(reason)) for reason in reasons]


@dataclass(frozen=True)
class Signals:
    """What is known about one scored item; None where a signal is not available yet."""

    confidence: float
    """Calibrated probability of the machine label."""
    margin: float
    """Calibrated probability of the machine label minus that of the runner-up."""
    neighbour_disagreement: float | None = None
    """Share of the nearest accepted neighbours whose label differs from the machine label."""
    student_disagreement: bool | None = None
    """Whether the promoted student's top label differs from the teacher's."""
    ood_distance: float | None = None
    """Cosine distance to the nearest labeled item (1 - max similarity)."""


@dataclass(frozen=True)
class Decision:
    accept: bool
    reasons: tuple[str, ...]
    """Why the item goes to review (empty when accepted), in the order of ``REASONS``."""


STUDENT_UNSURE = Decision(accept=False, reasons=("student_unsure",))
"""The decision for a row the student was unsure of when escalation to the teacher is deferred."""


def veto_reasons(*, signals: Signals, policy: Policy) -> tuple[str, ...]:
    """The reasons, other than confidence, that send an item to review under ``policy``."""
    reasons: list[str] = []
    if signals.neighbour_disagreement is not None and signals.neighbour_disagreement > policy.neighbour_max:
        reasons.append("neighbour_disagreement")
    if signals.student_disagreement:
        reasons.append("student_disagreement")
    if signals.ood_distance is not None and signals.ood_distance > policy.ood_max:
        reasons.append("out_of_distribution")
    return tuple(reasons)


def route(*, signals: Signals, policy: Policy, audit_draw: float) -> Decision:
    """Accept the machine label, or send the item to review with every reason that applied.

    ``audit_draw`` is a uniform draw in [0, 1); once a threshold is certified, any item goes to review as an
    ``audit_sample`` when ``audit_draw < policy.audit_share``, whatever its confidence: audits are a uniform
    sample of all routed items, so they can test any later labeler and threshold, not only the one in force.
    A policy without a threshold (too few reviews to certify one) accepts nothing: ``cold_start``, and those
    reviews are the uniform sample (only items at or above the newest candidate's slice floor; ``below_floor``
    otherwise).
    """
    if policy.threshold is not None and audit_draw < policy.audit_share:
        return Decision(accept=False, reasons=("audit_sample",))
    reasons: list[str] = []
    if policy.threshold is None:
        if not policy.uniform_draws:
            reasons.append("no_certificate")
        else:
            reasons.append("cold_start" if signals.confidence >= policy.draw_floor else "below_floor")
    elif signals.confidence < policy.threshold:
        reasons.append("below_threshold")
    reasons.extend(veto_reasons(signals=signals, policy=policy))
    if reasons:
        return Decision(accept=False, reasons=tuple(reasons))
    return Decision(accept=True, reasons=())
