"""What a worker keeps between jobs: settings, sessions, the models (loaded once, lazily) and per-task state."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.pipeline.cost import RunsOn, Stage, StageUsage
from service.pipeline.pool import LabeledPool, PoolEntry
from service.ports import Embedder, FloatArray, SpanTagger, Student, Teacher
from service.store import history

RECENT_FOR_PRIOR = 256
"""Raw teacher distributions kept per task for batch calibration (the mean is the model's prior)."""

TEACHER_RUNS_ON: dict[str, RunsOn] = {"transformers": "cpu", "vllm_offline": "gpu", "vllm_server": "server"}


@dataclass
class Meter:
    answered: int
    """Items whose label this model's call gave (the others went on to the teacher, or were not labels)."""


@dataclass
class Throughput:
    items: int = 0
    seconds: float = 0.0

    def add(self, items: int, seconds: float) -> None:
        self.items += items
        self.seconds += seconds

    @property
    def per_second(self) -> float | None:
        return self.items / self.seconds if self.seconds > 0 else None


@dataclass
class WorkerContext:
    settings: Settings
    sessions: sessionmaker[Session]
    teacher_factory: Callable[[], Teacher]
    """Models are built on first use, so start-up stays fast until work arrives."""
    embedder_factory: Callable[[], Embedder]
    student_loader: Callable[[Path], Student | SpanTagger]
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")
    _teacher: Teacher | None = None
    _embedder: Embedder | None = None
    _students: dict[str, Student | SpanTagger] = field(default_factory=dict)
    pools: dict[int, LabeledPool] = field(default_factory=dict)
    recent_raw: dict[int, deque[FloatArray]] = field(default_factory=dict)
    speeds: dict[Stage, Throughput] = field(default_factory=dict)
    """Each model's items and seconds in this worker since it started (the /metrics gauges)."""
    unrecorded: list[StageUsage] = field(default_factory=list)
    """Model calls not yet written to the task's usage (see take_usage)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerContext:
        """A worker on the configured database (migrated) with the configured teacher, embedder and students."""
        from service import db
        from service.backends.factory import load_any_student, make_embedder, make_teacher

        return cls(
            settings=settings,
            sessions=db.open(settings),
            teacher_factory=lambda: make_teacher(settings),
            embedder_factory=lambda: make_embedder(settings),
            student_loader=lambda path: load_any_student(settings, path),
        )

    @property
    def teacher(self) -> Teacher:
        if self._teacher is None:
            self._teacher = self.teacher_factory()
        return self._teacher

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = self.embedder_factory()
        return self._embedder

    def student(self, path: str) -> Student:
        loaded = self._loaded(path)
        if isinstance(loaded, SpanTagger):
            raise ValueError(f"{path} holds a span tagger, not a student that scores labels")
        return loaded

    def tagger(self, path: str) -> SpanTagger:
        """The span tagger of a spans task's student."""
        loaded = self._loaded(path)
        if not isinstance(loaded, SpanTagger):
            raise ValueError(f"{path} holds a student that scores labels, not a span tagger")
        return loaded

    def _loaded(self, path: str) -> Student | SpanTagger:
        if path not in self._students:
            self._students[path] = self.student_loader(Path(path))
        return self._students[path]

    def pool(self, session: Session, task_id: int) -> LabeledPool:
        """The task's labeled pool, brought up to date with labels written since the last call."""
        pool = self.pools.setdefault(task_id, LabeledPool())
        if pool.unembedded:
            waiting = history.labels_by_id(session, task_id=task_id, label_ids=pool.unembedded)
            pool.add_embedded((row.label_id, entry) for row in waiting if (entry := _entry(row)) is not None)
        rows = history.labels_since(session, task_id=task_id, after_label_id=pool.last_label_id)
        if rows:
            pool.add(
                (entry for row in rows if (entry := _entry(row)) is not None),
                last_label_id=rows[-1].label_id,
                unembedded=[row.label_id for row in rows if row.embedding is None],
            )
        return pool

    def speed(self, stage: Stage) -> Throughput:
        return self.speeds.setdefault(stage, Throughput())

    @contextmanager
    def metered(self, stage: Stage, items: int) -> Iterator[Meter]:
        """Time a model call on ``items`` items: wall and process CPU seconds, kept for the task's cost report
        (a call that raises spent its time too, but leaves no row: the chunk is scored again). The caller sets
        ``answered`` on the meter when the model kept fewer items than it scored (the student)."""
        meter = Meter(answered=items if stage == "teacher" else 0)
        wall, cpu = time.perf_counter(), time.process_time()
        yield meter
        spent = StageUsage(
            stage=stage,
            runs_on=self.runs_on(stage),
            items=items,
            answered=meter.answered,
            wall_s=time.perf_counter() - wall,
            cpu_s=time.process_time() - cpu,
        )
        self.speed(stage).add(items, spent.wall_s)
        self.unrecorded.append(spent)

    def take_usage(self) -> list[StageUsage]:
        """The model calls since the last take, to be written with the work they did."""
        taken, self.unrecorded = self.unrecorded, []
        return taken

    def runs_on(self, stage: Stage) -> RunsOn:
        """Where a stage's model runs: the student, the embedder and training on this worker's CPU; the teacher
        where its backend puts it (vLLM in this process needs a GPU)."""
        if stage != "teacher":
            return "cpu"
        return TEACHER_RUNS_ON[self.settings.teacher.backend]

    def recent(self, task_id: int) -> deque[FloatArray]:
        return self.recent_raw.setdefault(task_id, deque(maxlen=RECENT_FOR_PRIOR))


def _entry(row: history.LabeledRow) -> PoolEntry | None:
    if row.embedding is None:
        return None
    return PoolEntry(row.item_id, row.text, row.label, row.source, row.embedding.astype(np.float64))
