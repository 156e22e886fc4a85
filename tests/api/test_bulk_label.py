"""Bulk labeling of a file: streamed, every row once, resumable after an interruption (fake models)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.db import transaction
from service.errors import Conflict, Invalid
from service.jobs.bulk_label import completed_rows, label_file
from service.jobs.context import WorkerContext
from service.store import students, tasks
from tests.conftest import SPAM_TASK
from tests.fakes import KeywordStudent


class Interrupted(Exception):
    pass


def _csv(path: Path, rows: int) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        for i in range(rows):
            writer.writerow([f"r{i}", "win a free prize" if i % 3 == 0 else f"see you at {i}"])
    return path


def _label(worker: WorkerContext, path: Path, out: Path, **options: Any) -> dict[str, Any]:
    options = {"text_field": "text", "id_field": "id", "progress": lambda _: None, **options}
    return label_file(worker, task_name="sms", path=path, out=out, **options)


def test_resumes_after_interruption_with_every_row_once(
    client: TestClient, client_headers: dict[str, str], fake_worker: WorkerContext, tmp_path: Path
) -> None:
    client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers)
    source = _csv(tmp_path / "items.csv", 700)
    out = tmp_path / "labels.jsonl"

    def stop_after_first_chunk(done: int) -> None:
        if done >= 256:
            raise Interrupted

    with pytest.raises(Interrupted):
        label_file(
            fake_worker,
            task_name="sms",
            path=source,
            out=out,
            text_field="text",
            id_field="id",
            progress=stop_after_first_chunk,
        )
    with out.open("a") as handle:
        handle.write('{"id": "torn')  # a kill in the middle of a write
    assert completed_rows(out) == 256
    counts = _label(fake_worker, source, out)
    assert counts["resumed_from"] == 256 and counts["rows"] == 700
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["id"] for row in rows] == [f"r{i}" for i in range(700)]
    assert all(row["label"] in ("ham", "spam") and row["source"] == "teacher" for row in rows)
    assert all(row["reasons"] == ["cold_start"] for row in rows), "no reviews yet: nothing may be auto-accepted"


def test_bad_file_gives_one_line_error(
    client: TestClient, client_headers: dict[str, str], fake_worker: WorkerContext, tmp_path: Path
) -> None:
    client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": ""}\n')
    with pytest.raises(Invalid, match="row 2"):
        _label(fake_worker, bad, tmp_path / "o.jsonl", id_field=None)
    text_file = tmp_path / "items.txt"
    text_file.write_text("hello\n")
    with pytest.raises(Invalid, match="unsupported"):
        _label(fake_worker, text_file, tmp_path / "x.jsonl", id_field=None)


def test_deferred_escalation_never_calls_the_teacher(
    client: TestClient, client_headers: dict[str, str], fake_worker: WorkerContext, tmp_path: Path
) -> None:
    client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers)
    source = _csv(tmp_path / "items.csv", 30)
    with pytest.raises(Conflict, match="no promoted student"):
        _label(fake_worker, source, tmp_path / "none.jsonl", escalate_to_teacher=False)
    with transaction(fake_worker.sessions) as session:
        task = tasks.get_task(session, "sms")
        row = students.add(session, task_id=task.id, version="v1", path="fake", metrics={"threshold": 0.9})
        students.set_promoted(session, row=row, promoted_flag=True)
    fake_worker.student_loader = lambda path: KeywordStudent()
    fake_worker.teacher_factory = lambda: pytest.fail("the teacher must not be asked")
    out = tmp_path / "labels.jsonl"
    counts = _label(fake_worker, source, out, escalate_to_teacher=False)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert counts["student"] == counts["rows"] == len(rows) == 30 and counts["teacher"] == 0
    assert all(row["source"] == "student" and row["model"] == "student:v1" for row in rows)
    unsure = [row for row in rows if row["reasons"] == ["student_unsure"]]
    assert len(unsure) == 20 and all(row["label"] == "ham" and not row["accepted"] for row in unsure)
    # The teacher has no reviews (cold start), but the student's labels are routed by its own certified threshold.
    sure = [row for row in rows if row["reasons"] != ["student_unsure"]]
    assert len(sure) == 10 and all(row["label"] == "spam" for row in sure)
    assert all(row["accepted"] == (row["reasons"] == []) and row["reasons"] in ([], ["audit_sample"]) for row in sure)
    assert sum(row["accepted"] for row in sure) >= 8


def test_file_rows_count_in_the_cost_report_with_the_students_saving(
    client: TestClient, client_headers: dict[str, str], fake_worker: WorkerContext, tmp_path: Path
) -> None:
    client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers)
    with transaction(fake_worker.sessions) as session:
        task = tasks.get_task(session, "sms")
        row = students.add(session, task_id=task.id, version="v1", path="fake", metrics={"threshold": 0.9})
        students.set_promoted(session, row=row, promoted_flag=True)
    fake_worker.student_loader = lambda path: KeywordStudent()
    source = _csv(tmp_path / "items.csv", 30)
    _label(fake_worker, source, tmp_path / "first.jsonl", escalate_to_teacher=False)
    alone = client.get("/v1/tasks/sms/cost", headers=client_headers).json()
    assert alone["file_rows"] == alone["labeled"] == 30
    assert {s["source"]: s["items"] for s in alone["sources"]} == {"student": 30, "embedder": 30}
    assert alone["student_saving"] is None and "no teacher cost" in alone["saving_note"]
    counts = _label(fake_worker, source, tmp_path / "second.jsonl")
    assert (counts["student"], counts["teacher"]) == (10, 20), "the unsure rows go on to the teacher"
    cost = client.get("/v1/tasks/sms/cost", headers=client_headers).json()
    by = {source["source"]: source for source in cost["sources"]}
    assert cost["file_rows"] == 60 and by["teacher"]["items"] == 20 and by["student"]["items"] == 60
    saving = cost["student_saving"]
    assert saving["items"] == 40, "30 kept without asking the teacher, then 10 it was sure of"
    assert saving["saved_usd"] == pytest.approx(
        40 * saving["teacher_usd_per_1000"] / 1000 - saving["student_usd"]
    ) and saving["student_usd"] == pytest.approx(by["student"]["usd"])
