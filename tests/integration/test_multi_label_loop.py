"""A multi-label task through the loop on real parts, on both stores: the SmolLM2 teacher scores yes/no per label,
MiniLM embeds, reviewers answer with lists, a LoRA student with a sigmoid head trains, is promoted, predicts lists
and downloads as a multi_label_classification model."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.config import Settings
from service.datasets import read_labeled
from service.jobs.context import WorkerContext
from tests.api.test_loop import _drain_without_waiting
from tests.api.test_multi_label import review_until_done
from tests.conftest import ADMIN_KEY

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[2] / "bench" / "data" / "goemotions_ekman.jsonl"
LABELS = ("anger", "joy", "sadness")
ITEMS = 32


def _items() -> dict[str, list[str]]:
    """The first GoEmotions comments whose emotions are among LABELS (none is an answer too)."""
    chosen: dict[str, list[str]] = {}
    for text, label in read_labeled(DATA, text_field="text", label_field="labels"):
        present = json.loads(label)
        if set(present) <= set(LABELS) and text not in chosen:
            chosen[text] = present
        if len(chosen) == ITEMS:
            return chosen
    raise AssertionError("too few comments")


def test_a_multi_label_task_is_labeled_reviewed_distilled_and_exported(
    client: TestClient, client_headers: dict[str, str], reviewer_headers: dict[str, str], settings: Settings
) -> None:
    gold = _items()
    task = {
        "name": "emotions",
        "kind": "multi_label",
        "labels": [{"name": label} for label in LABELS],
        "instructions": "Which emotions does the Reddit comment express? It may express none.",
        "epsilon": 0.1,
    }
    assert client.post("/v1/tasks", json=task, headers=client_headers).status_code == 201
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    name = client.get("/v1/review/me", headers=reviewer_headers).json()["name"]
    client.put(f"/v1/tasks/emotions/reviewers/{name}", headers=admin)
    texts = list(gold)
    batch = client.post(
        "/v1/tasks/emotions/batches",
        json={"items": [{"id": f"c{i}", "text": text} for i, text in enumerate(texts)]},
        headers=client_headers,
    ).json()
    settings.student.min_train_labels = 15
    worker = WorkerContext.from_settings(settings)

    def answer(item: dict[str, Any]) -> list[str]:
        if not item["blind"]:
            assert isinstance(item["suggestion"], list) and set(item["suggestion"]) <= set(LABELS), item
            assert set(item["probs"]) == set(LABELS)
        return gold[texts[int(item["external_id"][1:])]]

    status = review_until_done(client, worker, batch["url"], client_headers, reviewer_headers, answer, rounds=20)
    assert status["done"] and status["counts"]["review"] == 0, status
    rows = client.get(batch["labels_url"], params={"limit": 100}, headers=client_headers).json()["items"]
    assert len(rows) == ITEMS and all(isinstance(row["label"], list) for row in rows)
    # The tiny teacher certifies nothing on 32 comments, so every review was a uniform (blind) draw; each item still
    # carries the teacher's label set, scored from its yes/no answers.
    exported = [
        json.loads(line)
        for line in client.get("/v1/tasks/emotions/export?format=jsonl", headers=client_headers).text.splitlines()
    ]
    assert len(exported) == ITEMS
    assert all(isinstance(row["prediction"], list) and row["model"] == settings.teacher.model for row in exported)

    job = client.post("/v1/tasks/emotions/students", json={"epochs": 1}, headers=client_headers).json()
    _drain_without_waiting(worker)
    done = client.get(job["job_url"], headers=client_headers).json()
    assert done["state"] == "done", done
    version = client.get("/v1/tasks/emotions/students", headers=client_headers).json()[0]
    student = version["metrics"]["student"]
    assert set(student["per_class"]) == set(LABELS) and 0.0 <= student["micro_f1"] <= 1.0
    promoted = client.post(
        f"/v1/tasks/emotions/students/{version['version']}/promote", json={"force": True}, headers=admin
    )
    assert promoted.status_code == 200, promoted.text
    predicted = client.post(
        "/v1/tasks/emotions/predict", json={"texts": [texts[0], "what a lovely day"]}, headers=client_headers
    )
    assert predicted.status_code == 200, predicted.text
    for prediction in predicted.json()["predictions"]:
        assert isinstance(prediction["label"], list) and set(prediction["probs"]) == set(LABELS)
        assert sorted(prediction["label"]) == sorted(label for label, p in prediction["probs"].items() if p > 0.5)
    archive = client.get(
        f"/v1/tasks/emotions/students/{version['version']}/download", params={"format": "hf"}, headers=client_headers
    )
    assert archive.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(archive.content)) as tar:
        folder = f"emotions-{version['version']}-hf"
        config = json.load(tar.extractfile(f"{folder}/config.json"))  # type: ignore[arg-type]
        card = tar.extractfile(f"{folder}/README.md").read().decode()  # type: ignore[union-attr]
    assert config["problem_type"] == "multi_label_classification" and list(config["id2label"].values()) == list(LABELS)
    assert "micro-F1" in card and "over 0.5" in card
