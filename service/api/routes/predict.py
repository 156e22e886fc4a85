"""Online prediction: the promoted student labels up to 1,000 texts synchronously; nothing is stored. Concurrent
requests are scored together (api/batcher.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
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
from service.ports import Student, TaskKind
from service.store import students, tasks

router = APIRouter(prefix="/v1/tasks/{task}/predict", tags=["students"])

StudentLoader = Callable[[Path], Student]
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
    batcher = await _batcher(request, promoted.path)
    probs = await batcher.predict(body.texts)
    threshold = promoted.threshold
    columns = kinds.columns(promoted.kind, promoted.labels)
    return PredictPublic(
        student=promoted.version,
        threshold=threshold,
        predictions=[
            PredictionPublic(
                label=kinds.shown(promoted.kind, promoted.labels, columns[int(p.argmax())]),
                confidence=float(p.max()),
                probs=kinds.label_probs(promoted.kind, promoted.labels, p),
                above_threshold=threshold is not None and float(p.max()) >= threshold,
            )
            for p in probs
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


async def _batcher(request: Request, path: str) -> MicroBatcher:
    """One batcher a student folder, its student loaded on first use (off the event loop: it takes seconds)."""
    state = request.app.state
    if path not in state.predictors:
        loader: StudentLoader = state.student_loader
        student = await asyncio.get_running_loop().run_in_executor(None, loader, Path(path))
        state.predictors.setdefault(path, MicroBatcher(student.predict_proba))
    batcher: MicroBatcher = state.predictors[path]
    return batcher
