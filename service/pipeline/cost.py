"""What a task's labels cost: the seconds each model spent (recorded per chunk by the worker) and the reviewers'
working time, priced per hour, and what the student saved by answering items the teacher would have scored.

Prices: a model on the CPU is priced by the CPU seconds of the worker's process (per vCPU-hour, so two busy threads
cost twice one); on a GPU, and behind a teacher server, by the wall seconds the worker spent waiting on it (per hour
of that machine, which assumes the machine serves this worker alone). Reviewers are priced by their working time,
estimated from when their answers came (``review_seconds``): the service never sees them stop working.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Literal

Stage = Literal["teacher", "student", "embedder", "training"]
"""What a model was doing: the teacher and the student label, the embedder embeds every item (few-shot neighbours,
signals), training fits a student."""
RunsOn = Literal["cpu", "gpu", "server"]

REVIEW_IDLE_S = 120.0
"""A gap between two answers of one reviewer longer than this is a break, not work on the second item."""
FIRST_ANSWER_S = 30.0
"""Time counted for an answer after a break when the reviewer has no shorter gap to go by."""


@dataclass(frozen=True)
class Prices:
    cpu_hour_usd: float
    """Per vCPU-hour."""
    gpu_hour_usd: float
    server_hour_usd: float
    """Per hour of the teacher server's machine."""
    reviewer_hour_usd: float


@dataclass(frozen=True)
class StageUsage:
    stage: Stage
    runs_on: RunsOn
    items: int
    """Items the model scored (training: examples trained on)."""
    answered: int
    """Items whose label it gave: the teacher every item it scored, the student those it was sure of."""
    wall_s: float
    cpu_s: float


@dataclass(frozen=True)
class SourceCost:
    source: str
    """A model stage, or ``human`` for the reviewers."""
    runs_on: str
    """cpu | gpu | server for a model; ``people`` for the reviewers."""
    items: int
    """Items the model scored (training: examples trained on; human: answers given)."""
    seconds: float
    """Wall seconds of the model; the reviewers' estimated working time."""
    cpu_seconds: float | None
    usd: float

    @property
    def usd_per_1000(self) -> float | None:
        return self.usd / self.items * 1000 if self.items else None


@dataclass(frozen=True)
class StudentSaving:
    items: int
    """Items the student labeled without asking the teacher."""
    teacher_usd_per_1000: float
    """What the teacher cost per 1,000 items it scored on this task."""
    student_usd: float
    """What the student cost: scoring every item it saw (kept or escalated) and its training."""
    saved_usd: float
    """What the teacher would have cost on the student's items, less the student's cost (negative: a loss)."""


@dataclass(frozen=True)
class CostReport:
    sources: list[SourceCost]
    labeled: int
    """Items with a final label, and rows labeled from files (which are not stored)."""
    imported: int
    """Human labels that came with an import: no review time is known for them."""
    total_usd: float
    student_saving: StudentSaving | None
    saving_note: str
    """Why there is no saving figure, when there is none."""

    @property
    def usd_per_1000_labeled(self) -> float | None:
        return self.total_usd / self.labeled * 1000 if self.labeled else None


def usage_usd(usage: StageUsage, prices: Prices) -> float:
    if usage.runs_on == "cpu":
        return usage.cpu_s / 3600 * prices.cpu_hour_usd
    hourly = prices.gpu_hour_usd if usage.runs_on == "gpu" else prices.server_hour_usd
    return usage.wall_s / 3600 * hourly


def review_seconds(answered_at: Sequence[datetime]) -> float:
    """One reviewer's working time from when their answers came: each answer counts the gap since their previous
    one; an answer after a break (a gap over REVIEW_IDLE_S, or their first) counts their median working gap."""
    times = sorted(answered_at)
    gaps = [(later - earlier).total_seconds() for earlier, later in pairwise(times)]
    working = [gap for gap in gaps if gap <= REVIEW_IDLE_S]
    after_break = statistics.median(working) if working else FIRST_ANSWER_S
    breaks = len(times) - len(working)
    return sum(working) + breaks * after_break


def cost_report(
    *,
    usage: Sequence[StageUsage],
    answered_at: Mapping[str, Sequence[datetime]],
    labeled: int,
    imported: int,
    prices: Prices,
) -> CostReport:
    """``answered_at``: each reviewer's answer times."""
    totals: dict[tuple[Stage, RunsOn], StageUsage] = {}
    for row in usage:
        key = (row.stage, row.runs_on)
        seen = totals.get(key, StageUsage(row.stage, row.runs_on, 0, 0, 0.0, 0.0))
        totals[key] = StageUsage(
            row.stage,
            row.runs_on,
            seen.items + row.items,
            seen.answered + row.answered,
            seen.wall_s + row.wall_s,
            seen.cpu_s + row.cpu_s,
        )
    sources = [
        SourceCost(
            source=row.stage,
            runs_on=row.runs_on,
            items=row.items,
            seconds=row.wall_s,
            cpu_seconds=row.cpu_s,
            usd=usage_usd(row, prices),
        )
        for row in sorted(totals.values(), key=lambda row: (row.stage, row.runs_on))
    ]
    answers = sum(len(times) for times in answered_at.values())
    if answers:
        working = sum(review_seconds(times) for times in answered_at.values())
        sources.append(
            SourceCost(
                source="human",
                runs_on="people",
                items=answers,
                seconds=working,
                cpu_seconds=None,
                usd=working / 3600 * prices.reviewer_hour_usd,
            )
        )
    kept = sum(row.answered for row in usage if row.stage == "student")
    saving, note = _student_saving(sources, kept)
    return CostReport(
        sources=sources,
        labeled=labeled,
        imported=imported,
        total_usd=sum(source.usd for source in sources),
        student_saving=saving,
        saving_note=note,
    )


def _student_saving(sources: Sequence[SourceCost], kept: int) -> tuple[StudentSaving | None, str]:
    if not kept:
        return None, "the student has labeled no item on its own yet"
    teacher = [source for source in sources if source.source == "teacher"]
    scored = sum(source.items for source in teacher)
    if not scored:
        return None, "the teacher has scored no item of this task, so there is no teacher cost to compare with"
    per_item = sum(source.usd for source in teacher) / scored
    student_usd = sum(source.usd for source in sources if source.source in ("student", "training"))
    saving = StudentSaving(
        items=kept,
        teacher_usd_per_1000=per_item * 1000,
        student_usd=student_usd,
        saved_usd=kept * per_item - student_usd,
    )
    return saving, ""
