"""What the student trains on: accepted labels as weighted examples, with human gold held out for evaluation.

Pure logic: rows in, `TrainExample`s and the held-out gold rows out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from service.pipeline.sources import HUMAN, HUMAN_SOURCES
from service.ports import TrainExample


class PlanRow(Protocol):
    """An item with its final label; `teacher_probs` and `template_sha` are the teacher's latest prediction."""

    @property
    def item_id(self) -> int: ...
    @property
    def text(self) -> str: ...
    @property
    def label(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def teacher_probs(self) -> tuple[float, ...] | None: ...
    @property
    def template_sha(self) -> str | None: ...


RowT = TypeVar("RowT", bound=PlanRow)


@dataclass(frozen=True)
class TrainingPlan(Generic[RowT]):
    train: list[TrainExample]
    gold: list[RowT]
    """Human-labeled rows held out of training, to evaluate the student and the teacher on."""
    prompt_versions: list[str]
    """Template shas behind the teacher's labels and soft targets used in training, sorted."""
    sources: dict[str, int]
    """Training examples by the source of their label (human, teacher, student)."""


def is_gold(item_id: int, *, seed: int, gold_share: float) -> bool:
    """Whether a human-labeled item is held out; stable per item, so versions are compared on the same gold."""
    digest = hashlib.sha256(f"{seed}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < gold_share


HUMAN_WEIGHT = 2.0
"""Training weight of a human label, against 1 for a machine label."""


def plan_training(
    rows: Sequence[RowT],
    *,
    labels: Sequence[str] | None,
    seed: int = 0,
    gold_share: float = 0.3,
    human_weight: float = HUMAN_WEIGHT,
    machine_weight: float = 1.0,
) -> TrainingPlan[RowT]:
    """Split rows into weighted training examples and held-out human gold.

    A ``gold_share`` of the human-labeled rows (chosen by a hash of item id and ``seed``) is held out;
    the other human rows train with ``human_weight``, machine rows (teacher or student) with
    ``machine_weight`` and, where the teacher's probabilities over ``labels`` are known, those as soft
    targets. Rows whose label is not one of ``labels`` are left out; with ``labels`` None (a spans task, whose span
    sets were checked as they were stored) none are, and none has a soft target. Returns a `TrainingPlan`.
    """
    if human_weight <= 0 or machine_weight <= 0:
        raise ValueError("weights must be positive")
    known = None if labels is None else set(labels)
    train: list[TrainExample] = []
    gold: list[RowT] = []
    prompt_versions: set[str] = set()
    sources: dict[str, int] = {}
    for row in rows:
        if known is not None and row.label not in known:
            continue
        if row.source in HUMAN_SOURCES:
            if is_gold(row.item_id, seed=seed, gold_share=gold_share):
                gold.append(row)
            else:
                train.append(TrainExample(row.text, row.label, weight=human_weight))
                sources[HUMAN] = sources.get(HUMAN, 0) + 1
            continue
        sources[row.source] = sources.get(row.source, 0) + 1
        scored = labels is not None and row.teacher_probs is not None and len(row.teacher_probs) == len(labels)
        soft = row.teacher_probs if scored else None
        train.append(TrainExample(row.text, row.label, weight=machine_weight, soft_target=soft))
        if row.template_sha is not None:
            prompt_versions.add(row.template_sha)
    return TrainingPlan(train=train, gold=gold, prompt_versions=sorted(prompt_versions), sources=sources)
