"""A registered student exported as a standard model folder (backends/student_export.py) with its model card, for
the CLI (a folder) and the API (a cached tar.gz)."""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from service.errors import Invalid
from service.formats.model_card import model_card
from service.ports import StudentExportFormat
from service.store import students, tasks
from service.tables import StudentVersion, Task

FORMATS: tuple[StudentExportFormat, ...] = ("hf", "onnx")
ARCHIVES = "exports"
"""Folder inside a student's folder where its archives are kept, one a format."""


def student_row(session: Session, task: Task, version: str | None) -> StudentVersion:
    """The named version, or the promoted one; an Invalid when none is named and none is promoted."""
    if version is not None:
        return students.get(session, task=task, version=version)
    row = students.promoted(session, task_id=task.id)
    if row is None:
        raise Invalid(f"task {task.name!r} has no promoted student: name a version", field="version")
    return row


def write_folder(session: Session, task: Task, row: StudentVersion, fmt: StudentExportFormat, out: Path) -> None:
    """The student as a folder at ``out`` (made; must not hold files already)."""
    from service.backends.student_export import export_student
    from service.backends.student_meta import StudentMeta

    if out.exists() and any(out.iterdir()):
        raise Invalid(f"{out} is not empty", field="out")
    folder = Path(row.path)
    try:
        meta = StudentMeta.from_pretrained(folder)
    except ValueError as exc:
        raise Invalid(f"student {row.version}'s folder cannot be read: {exc}", field="version") from exc
    if meta.kind == "spans" and fmt != "hf":
        raise Invalid("a spans task's student exports as hf (a token-classification model) only", field="format")
    card = model_card(
        task=task.name,
        kind=tasks.kind_of(task),
        version=row.version,
        fmt=fmt,
        labels=tasks.label_names(task),
        metrics=row.metrics,
        n_examples=meta.n_examples,
        trained_utc=meta.created_utc,
        exported_utc=datetime.now(UTC).isoformat(timespec="seconds"),
        epsilon=task.epsilon,
        delta=task.delta,
        max_length=meta.max_length,
    )
    export_student(folder, out, fmt=fmt, card=card)


def archive(session: Session, task: Task, row: StudentVersion, fmt: StudentExportFormat) -> Path:
    """A tar.gz of the exported folder, made once and kept beside the student (a student never changes)."""
    path = Path(row.path) / ARCHIVES / f"{task.name}-{row.version}-{fmt}.tar.gz"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        folder = Path(tmp) / f"{task.name}-{row.version}-{fmt}"
        write_folder(session, task, row, fmt, folder)
        partial = Path(tmp) / "archive.tar.gz"
        with tarfile.open(partial, "w:gz") as tar:
            tar.add(folder, arcname=folder.name)
        shutil.move(partial, path)  # a whole archive or none, if two requests race
    return path
