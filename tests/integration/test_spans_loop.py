"""A spans task on real parts, on both stores: WNUT 17 posts imported with their entity spans, a LoRA token
classifier on MiniLM trained by the worker's train_student job and scored entity by entity on held-out gold,
promoted, labeling raw posts in the cascade with the real teacher's structured answers for what it is unsure of,
those answers corrected on review, answering /predict, and downloaded as a token-classification model that plain
transformers loads in a fresh process (``pipeline(..., aggregation_strategy="simple")``) and reads the same spans
from."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from service.backends.span_student import SpanStudent
from service.config import Settings
from service.jobs.context import WorkerContext
from service.pipeline import span_sets
from tests.api.test_loop import _drain_without_waiting
from tests.conftest import ADMIN_KEY

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[2] / "bench" / "data" / "wnut17_train.jsonl"
LABELS = ("person", "location", "group", "corporation", "product", "creative-work")
ITEMS = 400

PIPELINE_CHECK = """
# What a user of the export runs: plain transformers, no code from Understudy; the spans the pipeline reads, and each
# text's per-token logits.
import json, sys
import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline
texts = json.loads(sys.argv[2])
tag = pipeline("token-classification", model=sys.argv[1], aggregation_strategy="simple")
found = [[[e["start"], e["end"], e["entity_group"]] for e in tag(text)] for text in texts]
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
model = AutoModelForTokenClassification.from_pretrained(sys.argv[1]).eval()
with torch.no_grad():
    logits = [model(**tokenizer(text, truncation=True, return_tensors="pt")).logits[0].tolist() for text in texts]
assert not any(name == "service" or name.startswith("service.") for name in sys.modules), "imported Understudy"
print(json.dumps({"spans": found, "logits": logits}))
"""


def test_a_spans_task_is_imported_distilled_promoted_and_exported(
    client: TestClient, client_headers: dict[str, str], settings: Settings, tmp_path: Path
) -> None:
    rows = [json.loads(line) for line in DATA.read_text().splitlines()[:ITEMS]]
    held_out = [json.loads(line) for line in DATA.read_text().splitlines()[-30:]]
    task = {"name": "wnut", "kind": "spans", "labels": [{"name": label} for label in LABELS]}
    assert client.post("/v1/tasks", json=task, headers=client_headers).status_code == 201
    upload = "".join(json.dumps(row) + "\n" for row in rows).encode()
    imported = client.post(
        "/v1/tasks/wnut/import?format=jsonl&label_field=spans", content=upload, headers=client_headers
    )
    assert imported.status_code == 202, imported.text
    assert imported.json()["labeled"] == ITEMS
    settings.student.min_train_labels = 50
    worker = WorkerContext.from_settings(settings)
    worker.settings.worker_poll_s = 0
    _drain_without_waiting(worker)

    job = client.post("/v1/tasks/wnut/students", json={"epochs": 5}, headers=client_headers).json()
    _drain_without_waiting(worker)
    done = client.get(job["job_url"], headers=client_headers).json()
    assert done["state"] == "done", done
    version = client.get("/v1/tasks/wnut/students", headers=client_headers).json()[0]
    metrics = version["metrics"]
    assert metrics["gate_metric"] == "micro_f1" and metrics["gold_examples"] > 30
    assert set(metrics["student"]["per_class"]) == set(LABELS)
    assert 0.0 <= metrics["student"]["micro_f1"] <= 1.0 and 0.0 <= metrics["student"]["ece"] <= 1.0
    assert metrics["train_sources"] == {"human": ITEMS - metrics["gold_examples"]}
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    promoted = client.post(f"/v1/tasks/wnut/students/{version['version']}/promote", json={}, headers=admin)
    assert promoted.status_code == 200, promoted.text

    # Raw posts go through the cascade: the tagger keeps what it is sure of (its certified threshold), the real
    # teacher (SmolLM2 under the JSON schema, with the nearest imported posts as examples) proposes the rest's
    # spans, and a reviewer answers one of them with a corrected set.
    raw = [{"id": row["id"], "text": row["text"]} for row in held_out[:6]]
    posted = client.post("/v1/tasks/wnut/batches", json={"items": raw}, headers=client_headers)
    assert posted.status_code == 202, posted.text
    _drain_without_waiting(worker)
    labeled = client.get(posted.json()["labels_url"], headers=client_headers).json()["items"]
    assert len(labeled) == len(raw) and all(row["state"] in ("accepted", "review") for row in labeled)
    by_text = {row["id"]: row["text"] for row in raw}
    for row in labeled:
        if row["state"] == "accepted":
            assert row["source"] == "student" and row["model"].startswith("student:")
            span_sets.canonical(row["label"], text=by_text[row["item_id"]], labels=LABELS)
        else:  # the tagger was unsure: the teacher proposed its spans, which wait for review
            assert row["model"] == worker.teacher.model_name and row["reasons"] == ["below_threshold"], row
            assert row["prompt_version"] is not None
    assert any(row["state"] == "review" for row in labeled), "the tagger was sure of every post"
    reviewer = client.post("/v1/keys", json={"name": "rev", "role": "reviewer"}, headers=admin).json()["key"]
    assert client.put("/v1/tasks/wnut/reviewers/rev", headers=admin).status_code == 200
    leased = client.post("/v1/tasks/wnut/review/next", headers={"Authorization": f"Bearer {reviewer}"}).json()
    assert leased["external_id"] in by_text and not leased["blind"]
    span_sets.canonical(leased["suggestion"], text=leased["text"], labels=LABELS)
    assert leased["span_confidences"] is None or len(leased["span_confidences"]) == len(leased["suggestion"])
    truth = next(row["spans"] for row in held_out if row["id"] == leased["external_id"])
    answer = [{k: span[k] for k in ("start", "end", "label")} for span in truth]
    resolved = client.post(
        f"/v1/tasks/wnut/review/{leased['item_id']}/resolve",
        json={"label": answer},
        headers={"Authorization": f"Bearer {reviewer}"},
    )
    assert resolved.status_code == 200 and resolved.json()["status"] == "final", resolved.text

    texts = [row["text"] for row in held_out]
    predicted = client.post("/v1/tasks/wnut/predict", json={"texts": texts}, headers=client_headers)
    assert predicted.status_code == 200, predicted.text
    answers = predicted.json()["predictions"]
    service_spans = [[[s["start"], s["end"], s["label"]] for s in answer["label"]] for answer in answers]
    for text, answer in zip(texts, answers, strict=True):
        assert 0.0 < answer["confidence"] <= 1.0
        # Every answer is a valid span set of its text.
        span_sets.canonical(answer["label"], text=text, labels=LABELS)

    archive = client.get(
        f"/v1/tasks/wnut/students/{version['version']}/download", params={"format": "hf"}, headers=client_headers
    )
    assert archive.status_code == 200, archive.text
    with tarfile.open(fileobj=io.BytesIO(archive.content)) as tar:
        tar.extractall(tmp_path, filter="data")
    folder = tmp_path / f"wnut-{version['version']}-hf"
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"] and config["id2label"]["1"] == "B-person"
    card = (folder / "README.md").read_text()
    assert "entity-level exact match" in card and "aggregation_strategy" in card
    assert (
        client.get(
            f"/v1/tasks/wnut/students/{version['version']}/download", params={"format": "onnx"}, headers=client_headers
        ).status_code
        == 422
    )
    done_check = subprocess.run(
        [sys.executable, "-c", PIPELINE_CHECK, str(folder), json.dumps(texts)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert done_check.returncode == 0, done_check.stderr[-2000:]
    outside = json.loads(done_check.stdout.strip().splitlines()[-1])
    assert outside["spans"] == service_spans, "the pipeline reads the spans the service gives"
    tagger = SpanStudent.load(Path(version["path"]))
    for text, logits in zip(texts, outside["logits"], strict=True):
        inputs = tagger.tokenizer(text, truncation=True, max_length=tagger.meta.max_length, return_tensors="pt")
        with torch.no_grad():
            mine = tagger.network(**inputs).logits[0]
        assert torch.allclose(mine, torch.tensor(logits), atol=1e-4)
