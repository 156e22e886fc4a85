"""The figures on a lead's dashboard, from rows the store read: the machine against the humans (a confusion matrix,
each source's accuracy on uniform reviews with an interval), and coverage, the certified bound and the realised
audit error as they moved. Pure functions over plain values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from service.pipeline import label_sets, span_sets
from service.pipeline.agreement import Votes
from service.pipeline.cost import review_seconds
from service.pipeline.policy import clopper_pearson_upper
from service.pipeline.reviewer_model import ReviewerModel


class Judged(NamedTuple):
    """One reviewed item as this module needs it (a tuple: one per review is made for each dashboard)."""

    human: str
    machine: str
    source: str
    raw_label: str | None
    stacked: bool
    uniform: bool
    audit: bool
    reviewed_at: datetime


def confusion(items: Sequence[Judged], *, labels: Sequence[str]) -> list[list[int]]:
    """Counts of reviewed items: row = the human's label, column = the machine's (labels outside the task's, from
    an earlier label set, are left out)."""
    index = {label: k for k, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for item in items:
        if item.human in index and item.machine in index:
            matrix[index[item.human]][index[item.machine]] += 1
    return matrix


NO_LABEL = "(no label)"
"""The row and column of a multi-label confusion for an empty set."""


def set_confusion(items: Sequence[Judged], *, labels: Sequence[str]) -> list[list[int]]:
    """A multi-label task's confusion over its labels and NO_LABEL (last), the human's down, the machine's across:
    a label both sets have counts on the diagonal; the labels only the human gave against those only the machine
    gave (each against each, a substitution), or against NO_LABEL when the other side gave none beyond the shared
    ones (a label missed or added); two empty sets count at (NO_LABEL, NO_LABEL). Sets outside the task's labels
    are left out."""
    index = {label: k for k, label in enumerate([*labels, NO_LABEL])}
    matrix = [[0] * len(index) for _ in index]
    for item in items:
        try:
            human, machine = label_sets.members(item.human, labels), label_sets.members(item.machine, labels)
        except ValueError:
            continue
        for label in set(human) & set(machine):
            matrix[index[label]][index[label]] += 1
        only_human = [label for label in human if label not in machine]
        only_machine = [label for label in machine if label not in human]
        if not (human or machine):
            only_human = only_machine = [NO_LABEL]
        for h in only_human or ([NO_LABEL] if only_machine else []):
            for m in only_machine or [NO_LABEL]:
                matrix[index[h]][index[m]] += 1
    return matrix


NO_SPAN = "(no span)"
"""The row and column of a spans confusion for a span one side does not have."""


def span_confusion(items: Sequence[Judged], *, labels: Sequence[str]) -> list[list[int]]:
    """A spans task's confusion over its labels and NO_SPAN (last), the human's down, the machine's across: spans at
    the same offsets on both sides count at their two labels (the diagonal when they agree); a span only the human
    drew counts against NO_SPAN (missed), one only the machine drew against it the other way (added), so a span with
    wrong boundaries counts once each way; two empty sets count at (NO_SPAN, NO_SPAN). Spans with a label outside
    the task's are left out."""
    index = {label: k for k, label in enumerate([*labels, NO_SPAN])}
    matrix = [[0] * len(index) for _ in index]
    for item in items:
        try:
            human, machine = (
                {(s.start, s.end): s.label for s in span_sets.members(name) if s.label in index}
                for name in (item.human, item.machine)
            )
        except (ValueError, TypeError):
            continue  # not a span set (an answer stored before the task was one)
        if not (human or machine):
            matrix[index[NO_SPAN]][index[NO_SPAN]] += 1
        for offsets in human.keys() | machine.keys():
            matrix[index[human.get(offsets, NO_SPAN)]][index[machine.get(offsets, NO_SPAN)]] += 1
    return matrix


@dataclass(frozen=True)
class SourceAccuracy:
    source: str
    items: int
    correct: int
    accuracy: float | None
    lower: float | None
    upper: float | None
    """Clopper-Pearson interval at level 1 - delta (delta / 2 on each side)."""


SOURCES = (
    ("teacher, raw", "the teacher's own top label, before calibration and stacking"),
    ("teacher, calibrated", "the teacher's calibrated label, routed while no stacked labeler was certified"),
    ("stacked labeler", "the certified stacked labeler's label (teacher, probe and student combined)"),
    ("student", "the promoted student's label"),
)


def source_accuracy(items: Sequence[Judged], *, delta: float, calibrated: bool = True) -> list[SourceAccuracy]:
    """Each source's accuracy on the uniform reviews it labeled: items drawn at random, so the figure is that of
    the items the source labels, not of those picked for looking wrong. A spans task's teacher is neither calibrated
    nor stacked (``calibrated`` false): its proposals as routed are its raw answers, and those two rows are left
    out."""
    uniform = [item for item in items if item.uniform]
    kept = [name for name, _ in SOURCES if calibrated or name in ("teacher, raw", "student")]
    answers: dict[str, list[bool]] = {name: [] for name in kept}
    for item in uniform:
        if item.raw_label is not None:
            answers["teacher, raw"].append(item.raw_label == item.human)
        if item.source == "student":
            answers["student"].append(item.machine == item.human)
        elif not calibrated:
            answers["teacher, raw"].append(item.machine == item.human)
        elif item.stacked:
            answers["stacked labeler"].append(item.machine == item.human)
        else:
            answers["teacher, calibrated"].append(item.machine == item.human)
    return [_interval(name, right, delta=delta) for name, right in answers.items()]


def _interval(source: str, right: Sequence[bool], *, delta: float) -> SourceAccuracy:
    n, correct = len(right), sum(right)
    if n == 0:
        return SourceAccuracy(source, 0, 0, None, None, None)
    lower = 1.0 - clopper_pearson_upper(errors=n - correct, n=n, delta=delta / 2)
    upper = clopper_pearson_upper(errors=correct, n=n, delta=delta / 2)
    return SourceAccuracy(source, n, correct, correct / n, lower, upper)


@dataclass(frozen=True)
class AuditPoint:
    at: datetime
    audits: int
    errors: int

    @property
    def error(self) -> float:
        return self.errors / self.audits


def audit_timeline(items: Sequence[Judged]) -> list[AuditPoint]:
    """The realised error of accepted labels, cumulative over the audit reviews in the order they came."""
    points, errors = [], 0
    audited = sorted((item for item in items if item.audit), key=lambda item: item.reviewed_at)
    for audits, item in enumerate(audited, 1):
        errors += int(item.machine != item.human)
        points.append(AuditPoint(item.reviewed_at, audits, errors))
    return points


@dataclass(frozen=True)
class ReviewerRow:
    reviewer: str
    answers: int
    per_hour: float | None
    """Answers per hour of working time (gaps between answers, breaks left out; see pipeline.cost)."""
    agreement: float | None
    """Share of their answers on items others also answered that matched the other answers."""
    gold_accuracy: float | None
    estimated_accuracy: float | None
    """From the reviewer model (Dawid-Skene on gold and multiply answered items); None with no such answers."""
    evidence: int


def reviewer_rows(
    *,
    votes: Votes,
    answered_at: Mapping[str, Sequence[datetime]],
    gold: Mapping[int, str],
    model: ReviewerModel,
) -> list[ReviewerRow]:
    """One row per reviewer who answered: throughput, agreement with the others, accuracy on gold, and the
    model's estimate."""
    answers: dict[str, int] = {}
    agreed: dict[str, list[bool]] = {}
    gold_right: dict[str, list[bool]] = {}
    for item, given in votes.items():
        for reviewer, label in given.items():
            answers[reviewer] = answers.get(reviewer, 0) + 1
            others = [other for name, other in given.items() if name != reviewer]
            agreed.setdefault(reviewer, []).extend(other == label for other in others)
            if item in gold:
                gold_right.setdefault(reviewer, []).append(label == gold[item])
    rows = []
    for reviewer in sorted(answers):
        seconds = review_seconds(answered_at.get(reviewer, []))
        rows.append(
            ReviewerRow(
                reviewer=reviewer,
                answers=answers[reviewer],
                per_hour=answers[reviewer] / seconds * 3600 if seconds > 0 else None,
                agreement=_share(agreed.get(reviewer, [])),
                gold_accuracy=_share(gold_right.get(reviewer, [])),
                estimated_accuracy=model.accuracy(reviewer) if reviewer in model.evidence else None,
                evidence=model.evidence.get(reviewer, 0),
            )
        )
    return rows


def _share(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None
