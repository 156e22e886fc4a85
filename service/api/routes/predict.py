"""Online prediction: the promoted student labels up to 1,000 texts synchronously; nothing is stored. Concurrent
requests are scored together (api/batcher.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session, sessionmaker

from service.api.batcher import MicroBatcher
from service.api.cache import TtlCache
from service.api.deps import ClientDep, SettingsDep
from service.api.schemas.students import PredictCreate, PredictionPublic, PredictPublic
from service.db import transaction
from service.errors import Conflict, Invalid
from service.pipeline import kinds
from service.pipeline.cascade import UNCERTIFIED_THRESHOLD
from service.pipeline.kinds import Shown
from service.ports import SpanTagger, Student, TaskKind
from service.store import students, tasks

router = APIRouter(prefix="/v1/tasks/{task}/predict", tags=["students"])

StudentLoader = Callable[[Path], Student | SpanTagger]
Scored = tuple[Shown, float, dict[str, float]]
"""One text's answer: its label as users read it, its confidence, and per label its probability (none for spans)."""
PROMOTED_CACHE_S = 2.0


@dataclass(frozen=True)
class Promoted:
    version: str
    path: str
    threshold: float | None
    labels: tuple[str, ...]
    kind: TaskKind


@router.post("", response_model=PredictPublic)
async def predict(
    task: str, body: PredictCreate, request: Request, settings: SettingsDep, _key: ClientDep
) -> PredictPublic:
    """The promoted student's label, probabilities and whether its certified threshold accepts each text."""
    for index, text in enumerate(body.texts):
        if len(text) > settings.max_text_chars:
            raise Invalid(
                f"text is {len(text)} characters; the limit is {settings.max_text_chars}", field=f"texts.{index}"
            )
    promoted = await _cached_promoted(request, task)
    batcher = await _batcher(request, promoted)
    scored = await batcher.predict(body.texts)
    threshold = promoted.threshold
    return PredictPublic(
        student=promoted.version,
        threshold=threshold,
        predictions=[
            PredictionPublic(
                label=label,
                confidence=confidence,
                probs=probs,
                above_threshold=threshold is not None and confidence >= threshold,
            )
            for label, confidence, probs in scored
        ],
    )


async def _cached_promoted(request: Request, task: str) -> Promoted:
    """The task's promoted student, read at most every PROMOTED_CACHE_S per task (a promotion in this process
    clears it): on SQLite every transaction takes the write lock, and concurrent requests would queue on it. The
    read is done before the model call, so no connection is held while requests wait to be batched."""
    cache: TtlCache[str, Promoted] = request.app.state.promoted_cache
    return await cache.get_or_load(task, lambda: _promoted(request.app.state.sessions, task))


def _promoted(sessions: sessionmaker[Session], task: str) -> Promoted:
    with transaction(sessions) as session:
        task_row = tasks.get_task(session, task)
        row = students.promoted(session, task_id=task_row.id)
        if row is None:
            raise Conflict(f"task {task!r} has no promoted student to predict with", field="task")
        threshold = float(row.metrics.get("threshold", UNCERTIFIED_THRESHOLD))
        return Promoted(
            version=row.version,
            path=row.path,
            threshold=threshold if threshold <= 1.0 else None,
            labels=tuple(tasks.label_names(task_row)),
            kind=tasks.kind_of(task_row),
        )


async def _batcher(request: Request, promoted: Promoted) -> MicroBatcher[Scored]:
    """One batcher a student folder, its student loaded on first use (off the event loop: it takes seconds)."""
    state = request.app.state
    if promoted.path not in state.predictors:
        loader: StudentLoader = state.student_loader
        student = await asyncio.get_running_loop().run_in_executor(None, loader, Path(promoted.path))
        state.predictors.setdefault(promoted.path, MicroBatcher(partial(_score, student, promoted)))
    batcher: MicroBatcher[Scored] = state.predictors[promoted.path]
    return batcher


def _score(student: Student | SpanTagger, promoted: Promoted, texts: Sequence[str]) -> list[Scored]:
    """Each text's answer: the student's likeliest column, or a span tagger's span set."""
    kind, labels = promoted.kind, promoted.labels
    if isinstance(student, SpanTagger):
        return [(kinds.shown(kind, labels, name), p, {}) for name, p in student.predict_spans(texts)]
    columns = kinds.columns(kind, labels)
    return [
        (kinds.shown(kind, labels, columns[int(p.argmax())]), float(p.max()), kinds.label_probs(kind, labels, p))
        for p in student.predict_proba(texts)
    ]
