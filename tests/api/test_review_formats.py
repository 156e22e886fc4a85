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

from service.config import Settings
from service.jobs import worker
from service.jobs.context import WorkerContext
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
    assert all(task["predictions"][0]["result"][0]["value"]["choices"] for task in studio)
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
        return dict(response.json())

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

    pq.write_table(pa.Table.from_pylist(rows), sink)
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
            batch, created, labeled = exports.import_file(
                session, task=task, fmt=fmt, path=tmp_path / fmt, reviewer="me"
            )
            assert created and batch.item_count == written[fmt]
            assert labeled == (resolved if fmt == "labelstudio" else 0)
            if fmt != "labelstudio":
                again = exports.import_file(
                    session, task=task, fmt=fmt, path=tmp_path / fmt, reviewer="me", label_field="label"
                )
                assert again[2] == resolved, f"{fmt}: an export's label column comes back as human labels"
        first = exports.import_file(
            session, task=task, fmt="hf", path=tmp_path / "hf", reviewer="me", idempotency_key="k"
        )
        repeat = exports.import_file(
            session, task=task, fmt="hf", path=tmp_path / "hf", reviewer="me", idempotency_key="k"
        )
        assert repeat[0].id == first[0].id and not repeat[1]
    engine.dispose()


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
    assert batch.json()["counts"] == {"queued": 1, "accepted": 0, "review": 0, "resolved": 2}
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
