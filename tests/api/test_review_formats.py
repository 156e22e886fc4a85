"""Import and export over HTTP: Label Studio JSON both ways, final labels with provenance to JSONL, CSV, Parquet and
a zipped datasets folder, raw items from JSONL, CSV and Parquet."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import httpx
import pyarrow.parquet as pq
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service.api.schemas.tasks import TaskCreate
from service.config import Settings
from service.jobs import worker
from service.jobs.context import WorkerContext
from service.store.history import drawn_at_random
from service.tables import Item
from tests.conftest import SPAM_TASK, make_key

ADMIN = {"Authorization": "Bearer test-admin-key"}


def _labeled_task(client: TestClient, client_headers: dict[str, str], settings: Settings, ctx: WorkerContext) -> int:
    """The sms task with six items in review, two of them resolved by a reviewer; returns the resolved count."""
    client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers)
    items = [{"id": f"e{i}", "text": f"free prize {i}", "meta": {"lang": "en"}} for i in range(6)]
    client.post("/v1/tasks/sms/batches", json={"items": items}, headers=client_headers)
    while worker.run_once(ctx):
        pass
    reviewer = make_key(settings, "reviewer")
    name = client.get("/v1/review/me", headers=reviewer).json()["name"]
    client.put(f"/v1/tasks/sms/reviewers/{name}", headers=ADMIN)
    for label in ("spam", "ham"):
        item = client.post("/v1/tasks/sms/review/next", headers=reviewer).json()
        client.post(f"/v1/tasks/sms/review/{item['item_id']}/resolve", json={"label": label}, headers=reviewer)
    return 2


def test_exports_carry_final_labels_with_provenance(
    client: TestClient, client_headers: dict[str, str], settings: Settings, fake_worker: WorkerContext, tmp_path: Path
) -> None:
    resolved = _labeled_task(client, client_headers, settings, fake_worker)

    def get(fmt: str) -> bytes:
        response = client.get("/v1/tasks/sms/export", params={"format": fmt}, headers=client_headers)
        assert response.status_code == 200, response.text
        return response.content

    lines = [json.loads(line) for line in get("jsonl").decode().splitlines()]
    assert len(lines) == resolved and {row["label"] for row in lines} == {"spam", "ham"}
    assert all(row["source"] == "human" and row["reviewer"] and row["model"] == "keyword-teacher" for row in lines)
    assert all(row["meta"] == {"lang": "en"} and row["reasons"] and len(row["votes"]) == 1 for row in lines)
    table = list(csv.DictReader(io.StringIO(get("csv").decode())))
    assert [row["label"] for row in table] == [row["label"] for row in lines]
    assert json.loads(table[0]["reasons"]) == lines[0]["reasons"]
    parquet = pq.read_table(io.BytesIO(get("parquet"))).to_pylist()
    assert [row["external_id"] for row in parquet] == [row["external_id"] for row in lines]
    with zipfile.ZipFile(io.BytesIO(get("hf"))) as archive:
        archive.extractall(tmp_path / "ds")
    from datasets import load_from_disk

    dataset = load_from_disk(str(tmp_path / "ds"))
    assert dataset.num_rows == resolved and dataset[0]["label"] == lines[0]["label"]
    studio = json.loads(get("labelstudio"))
    assert len(studio) == 6, "Label Studio gets every item, labeled or not"
    annotated = [task for task in studio if task["annotations"]]
    assert len(annotated) == resolved
    blind = [t for t in studio if t["meta"]["state"] == "review" and drawn_at_random(t["meta"]["reasons"])]
    assert all(not task["predictions"] for task in blind), "items drawn at random go out blind"
    shown = [task for task in studio if task not in blind]
    assert shown and all(task["predictions"][0]["result"][0]["value"]["choices"] for task in shown)
    assert all("id" not in task and task["meta"]["understudy_item_id"] for task in studio), "Label Studio's own ids"
    assert client.get("/v1/tasks/sms/export", params={"format": "xml"}, headers=client_headers).status_code == 422


def test_label_studio_round_trip_and_raw_imports(
    client: TestClient, client_headers: dict[str, str], settings: Settings, fake_worker: WorkerContext
) -> None:
    _labeled_task(client, client_headers, settings, fake_worker)
    studio = client.get("/v1/tasks/sms/export", params={"format": "labelstudio"}, headers=client_headers).content
    client.post("/v1/tasks", json={**SPAM_TASK, "name": "copy"}, headers=client_headers)

    def post(fmt: str, body: bytes, task: str = "copy") -> dict[str, object]:
        response = client.post(f"/v1/tasks/{task}/import", params={"format": fmt}, content=body, headers=client_headers)
        assert response.status_code == 202, response.text
        result = response.json()
        assert result["added"] == result["batch"]["item_count"] and result["matched"] == 0
        return dict(result["batch"])

    batch = post("labelstudio", studio)
    assert batch["item_count"] == 6 and batch["counts"] == {"queued": 4, "accepted": 0, "review": 0, "resolved": 2}
    fields = ("external_id", "text", "label", "source")

    def final(task: str) -> list[list[object]]:
        body = client.get(f"/v1/tasks/{task}/export", params={"format": "jsonl"}, headers=client_headers).content
        return [[json.loads(line)[field] for field in fields] for line in body.splitlines()]

    assert final("copy") == final("sms"), "annotations come back as the same human labels"
    rows = [{"id": "r1", "text": "see you soon", "topic": "x"}, {"text": "win cash"}]
    jsonl = post("jsonl", "\n".join(json.dumps(r) for r in rows).encode(), task="sms")
    assert jsonl["item_count"] == 2
    assert post("csv", b"id,text\nc1,hello there\nc2,call now\n", task="sms")["item_count"] == 2
    sink = io.BytesIO()
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist([{**row, "id": f"p{i}"} for i, row in enumerate(rows)]), sink)
    assert post("parquet", sink.getvalue(), task="sms")["item_count"] == 2
    bad = client.post(
        "/v1/tasks/sms/import", params={"format": "csv"}, content=b"id,body\n1,x\n", headers=client_headers
    )
    assert bad.status_code == 422 and bad.json()["field"] == "rows.0.text"
    wrong = json.dumps([{"data": {"text": "x"}, "annotations": [{"result": [{"value": {"choices": ["eggs"]}}]}]}])
    refused = client.post(
        "/v1/tasks/sms/import", params={"format": "labelstudio"}, content=wrong.encode(), headers=client_headers
    )
    assert refused.status_code == 422 and refused.json()["field"] == "0.annotations"
    named = json.dumps([{"id": 17, "data": {"external_id": "m9", "title": "a", "body": "b"}}])
    not_json = client.post(
        "/v1/tasks/sms/import",
        params={"format": "labelstudio"},
        content=b'[{"data":\n  {"text": }}]',
        headers=client_headers,
    )
    assert not_json.status_code == 400 and "line 2, column 12" in not_json.json()["detail"], not_json.text
    missing = client.post(
        "/v1/tasks/sms/import",
        params={"format": "labelstudio"},
        content=named.encode(),
        headers=client_headers,
    )
    assert "task 0 (Label Studio id 17, external_id 'm9') has no data.text" in missing.json()["detail"]


def test_files_both_ways_including_a_datasets_folder(
    client: TestClient, client_headers: dict[str, str], settings: Settings, fake_worker: WorkerContext, tmp_path: Path
) -> None:
    from service.db import make_engine, session_factory, transaction
    from service.store import exports, tasks

    resolved = _labeled_task(client, client_headers, settings, fake_worker)
    engine = make_engine(settings.resolved_database_url)
    formats = ("jsonl", "csv", "parquet", "hf", "labelstudio")
    with transaction(session_factory(engine)) as session:
        task = tasks.get_task(session, "sms")
        written = {fmt: exports.export_file(session, task=task, fmt=fmt, path=tmp_path / fmt) for fmt in formats}
        assert written == {**dict.fromkeys(formats, resolved), "labelstudio": 6}
        for fmt in formats:
            copy = tasks.create_task(session, TaskCreate.model_validate({**SPAM_TASK, "name": f"copy-{fmt}"}))
            result = exports.import_file(session, task=copy, fmt=fmt, path=tmp_path / fmt, importer="me")
            assert result.created and result.batch is not None and result.added == written[fmt]
            assert result.labeled == (resolved if fmt == "labelstudio" else 0)
            again = exports.import_file(
                session, task=copy, fmt=fmt, path=tmp_path / fmt, importer="me", label_field=_label_field(fmt)
            )
            assert (again.matched, again.added, again.batch) == (written[fmt], 0, None)
            assert again.labeled == (0 if fmt == "labelstudio" else resolved), f"{fmt}: labels land on the same items"
            assert session.scalar(select(func.count()).select_from(Item).where(Item.task_id == copy.id)) == written[fmt]
        extra = tmp_path / "new.csv"
        extra.write_text("id,text\nn1,one\nn2,two\n")
        first = exports.import_file(session, task=task, fmt="csv", path=extra, importer="me", idempotency_key="k")
        repeat = exports.import_file(session, task=task, fmt="csv", path=extra, importer="me", idempotency_key="k")
        assert first.batch is not None and first.added == 2
        assert (repeat.batch, repeat.matched, repeat.unchanged) == (None, 2, 2), "the second time changes nothing"
    engine.dispose()


def _label_field(fmt: str) -> str | None:
    return None if fmt == "labelstudio" else "label"


def test_a_label_studio_round_trip_lands_on_the_same_items_with_the_annotators(
    client: TestClient, client_headers: dict[str, str], settings: Settings, fake_worker: WorkerContext
) -> None:
    """The common workflow: the items waiting for review go to Label Studio annotators and their work comes back
    into the same task, onto the same items, under their names and times, out of the review queue."""
    _labeled_task(client, client_headers, settings, fake_worker)
    exported = client.get("/v1/tasks/sms/export", params={"format": "labelstudio"}, headers=client_headers).json()
    waiting = [task for task in exported if task["meta"]["state"] == "review"]
    assert len(waiting) == 4
    for number, task in enumerate(waiting):
        # As Label Studio exports them: its own task ids, user ids in completed_by, times in UTC.
        task["id"] = 100 + number
        task["annotations"] = [
            {
                "completed_by": number % 2 + 1,
                "created_at": f"2026-11-0{number + 1}T10:00:00.000000Z",
                "was_cancelled": False,
                "result": [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": ["ham"]}}],
            }
        ]
    body = json.dumps(exported).encode()
    answer = client.post("/v1/tasks/sms/import", params={"format": "labelstudio"}, content=body, headers=client_headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"matched": 6, "labeled": 4, "added": 0, "unchanged": 2, "batch": None}
    again = client.post("/v1/tasks/sms/import", params={"format": "labelstudio"}, content=body, headers=client_headers)
    assert again.json() == {"matched": 6, "labeled": 0, "added": 0, "unchanged": 6, "batch": None}
    rows = [
        json.loads(line)
        for line in client.get(
            "/v1/tasks/sms/export", params={"format": "jsonl"}, headers=client_headers
        ).content.splitlines()
    ]
    by_id = {row["external_id"]: row for row in rows}
    for number, sent in enumerate(waiting):
        row = by_id[sent["data"]["external_id"]]
        assert (row["label"], row["source"]) == ("ham", "human")
        assert row["reviewer"] == f"labelstudio:{number % 2 + 1}"
        assert row["labeled_at"].startswith(f"2026-11-0{number + 1}T10:00:00")
        assert row["votes"] == {f"labelstudio:{number % 2 + 1}": "ham"}, "reviewer quality sees the annotator"
    from service.db import make_engine, session_factory, transaction
    from service.tables import Label

    engine = make_engine(settings.resolved_database_url)
    with transaction(session_factory(engine)) as session:
        importers = set(session.scalars(select(Label.imported_by).where(Label.reviewer.like("labelstudio:%"))))
        states = list(session.scalars(select(Item.state)))
    engine.dispose()
    assert len(importers) == 1 and str(importers.pop()).startswith("client-"), "the importing key, recorded apart"
    assert states == ["resolved"] * 6, "no copies, and nothing left in review"


def test_the_labeling_config_comes_from_the_task(client: TestClient, client_headers: dict[str, str]) -> None:
    client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers)
    answer = client.get("/v1/tasks/sms/labelstudio/config", headers=client_headers)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/xml")
    import xml.etree.ElementTree as ET

    view = ET.fromstring(answer.text)
    choices = view.find("Choices")
    assert choices is not None and choices.get("name") == "label" and choices.get("toName") == "text"
    assert view.find("Text") is not None and view.find("Text").get("value") == "$text"  # type: ignore[union-attr]
    assert [c.get("value") for c in choices.findall("Choice")] == [label["name"] for label in SPAM_TASK["labels"]]
    assert client.get("/v1/tasks/nope/labelstudio/config", headers=client_headers).status_code == 404


def test_a_label_column_imports_human_labels_that_join_the_labeled_pool(
    client: TestClient, client_headers: dict[str, str], fake_worker: WorkerContext
) -> None:
    from service.db import transaction
    from service.store import tasks

    client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers)

    def post(body: bytes, **params: str) -> httpx.Response:
        return client.post(
            "/v1/tasks/sms/import", params={"format": "csv", **params}, content=body, headers=client_headers
        )

    good = b"id,text,gold,lang\na,win a free prize,spam,en\nb,see you at lunch,ham,en\nc,call me later,,en\n"
    batch = post(good, label_field="gold")
    assert batch.status_code == 202, batch.text
    assert batch.json()["batch"]["counts"] == {"queued": 1, "accepted": 0, "review": 0, "resolved": 2}
    bad = post(b"id,text,gold\nx,hello,spam\ny,bye,eggs\nz,hey,Spam\n", label_field="gold")
    assert bad.status_code == 422
    problem = bad.json()
    assert (
        problem["field"] == "label_field"
        and "rows 1, 2" in problem["detail"]
        and "nothing was imported" in problem["detail"]
    )
    missing = post(good, label_field="label")
    assert missing.status_code == 422 and "no column 'label'" in missing.json()["detail"]
    studio = client.post(
        "/v1/tasks/sms/import",
        params={"format": "labelstudio", "label_field": "gold"},
        content=b"[]",
        headers=client_headers,
    )
    assert studio.status_code == 422 and studio.json()["field"] == "label_field"
    listed = client.get("/v1/tasks/sms/export", params={"format": "jsonl"}, headers=client_headers).content
    rows = [json.loads(line) for line in listed.splitlines()]
    assert sorted((r["external_id"], r["label"], r["source"]) for r in rows) == [
        ("a", "spam", "human"),
        ("b", "ham", "human"),
    ], "the refused file left nothing behind; the label column is not meta"
    assert all(r["meta"] == {"lang": "en"} for r in rows)

    with transaction(fake_worker.sessions) as session:
        early = fake_worker.pool(session, tasks.get_task(session, "sms").id)
    assert len(early.unembedded) == 2 and not len(early), "read before the worker embedded them: they wait"
    while worker.run_once(fake_worker):
        pass
    with transaction(fake_worker.sessions) as session:
        pool = fake_worker.pool(session, tasks.get_task(session, "sms").id)
        joined = {(source, label) for _, source, label in pool.provenance()}
    assert {("human", "spam"), ("human", "ham")} <= joined, "embedded by the worker, they join the labeled pool"
    assert not pool.unembedded
