"""`understudy backup` and `restore` on both stores: every label, review answer and student comes back, into
another database and adapters folder; bad files and a database that holds tasks are refused in one line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from service import db
from service.cli import app as cli
from service.config import Settings, get_settings
from service.jobs import worker
from service.jobs.context import WorkerContext
from service.store import students, tasks
from service.tables import Item, Label, ReviewVote, StudentVersion
from tests.conftest import ADMIN_KEY, SPAM_TASK, _postgres_database

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def other_database_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'restored' / 'understudy.db'}"
    else:
        yield from _postgres_database()


def _history(url: str) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]], list[str]]:
    sessions = db.open_database(url)
    with db.transaction(sessions) as session:
        labels = session.execute(
            select(Item.external_id, Label.label, Label.source).join(Item, Item.id == Label.item_id).order_by(Label.id)
        ).all()
        votes = session.execute(
            select(Item.external_id, ReviewVote.reviewer, ReviewVote.label)
            .join(Item, Item.id == ReviewVote.item_id)
            .order_by(ReviewVote.id)
        ).all()
        paths = list(session.scalars(select(StudentVersion.path)))
    db.engine_of(sessions).dispose()
    return [tuple(row) for row in labels], [tuple(row) for row in votes], paths


def test_a_restored_backup_holds_every_label_review_and_student(
    client: TestClient,
    client_headers: dict[str, str],
    reviewer_headers: dict[str, str],
    settings: Settings,
    fake_worker: WorkerContext,
    other_database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers)
    name = client.get("/v1/review/me", headers=reviewer_headers).json()["name"]
    client.put(f"/v1/tasks/sms/reviewers/{name}", headers=ADMIN)
    items = [{"id": f"b{i}", "text": f"free prize {i}" if i % 3 == 0 else f"see you at {i}"} for i in range(30)]
    client.post("/v1/tasks/sms/batches", json={"items": items}, headers=client_headers)
    while worker.run_once(fake_worker):
        pass
    for _ in range(10):
        item = client.post("/v1/tasks/sms/review/next", headers=reviewer_headers).json()
        label = "spam" if "prize" in item["text"] else "ham"
        client.post(f"/v1/tasks/sms/review/{item['item_id']}/resolve", json={"label": label}, headers=reviewer_headers)
    student_dir = settings.resolved_adapters_dir / "sms" / "v1"
    student_dir.mkdir(parents=True)
    (student_dir / "meta.json").write_text("{}")
    with db.transaction(fake_worker.sessions) as session:
        task = tasks.get_task(session, "sms")
        students.add(session, task_id=task.id, version="v1", path=str(student_dir), metrics={})
    before = _history(settings.resolved_database_url)
    assert len(before[0]) == 10 and len(before[1]) == 10

    runner = CliRunner()
    archive = tmp_path / "backups" / "understudy.tar.gz"
    monkeypatch.setenv("UNDERSTUDY_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("UNDERSTUDY_ADAPTERS_DIR", str(settings.resolved_adapters_dir))
    get_settings.cache_clear()
    made = runner.invoke(cli, ["backup", "--out", str(archive)])
    assert made.exit_code == 0 and "1 tasks, 30 items, 10 labels, 10 review answers and 1 students" in made.output

    restored_adapters = tmp_path / "restored-adapters"
    monkeypatch.setenv("UNDERSTUDY_DATABASE_URL", other_database_url)
    monkeypatch.setenv("UNDERSTUDY_ADAPTERS_DIR", str(restored_adapters))
    get_settings.cache_clear()
    done = runner.invoke(cli, ["restore", str(archive)])
    assert done.exit_code == 0, done.output
    labels, votes, paths = _history(other_database_url)
    assert (labels, votes) == before[:2], "every label and review answer, in order"
    assert paths == [str(restored_adapters.resolve() / "sms" / "v1")] and Path(paths[0], "meta.json").is_file()

    again = runner.invoke(cli, ["restore", str(archive)])
    assert again.exit_code == 2 and "holds 1 tasks" in again.output and "--force" in again.output
    assert runner.invoke(cli, ["restore", str(archive), "--force"]).exit_code == 0
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a backup")
    bad = runner.invoke(cli, ["restore", str(junk), "--force"])
    assert bad.exit_code == 2 and "is not an Understudy backup" in bad.output and "Traceback" not in bad.output
    missing = runner.invoke(cli, ["restore", str(tmp_path / "none.tar.gz")])
    assert missing.exit_code == 2 and "no such file" in missing.output
    assert _history(other_database_url)[:2] == before[:2], "refused restores changed nothing"
    get_settings.cache_clear()
