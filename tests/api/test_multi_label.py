"""A multi-label task through the API on both stores: created with its template, labeled by the teacher as label
sets, reviewed with lists (an empty list is an answer), exported as lists (JSON strings in CSV, several choices in
Label Studio) and imported back from a label column or Label Studio annotations; bad values get a problem+json."""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from service.config import Settings
from service.jobs.context import WorkerContext
from tests.api.test_dashboard import _login
from tests.api.test_loop import _drain_without_waiting
from tests.conftest import ADMIN_KEY

TASK = {
    "name": "emotions",
    "kind": "multi_label",
    "labels": [{"name": "anger"}, {"name": "joy"}, {"name": "sadness"}],
    "instructions": "Which emotions does the comment express?",
    "examples": [{"text": "joy and sadness at once", "label": ["sadness", "joy"]}],
    "epsilon": 0.1,
    "review_budget": 12,
}
TEXTS = {
    "a": "pure joy today",
    "b": "anger at the referee",
    "c": "sadness and anger after the match",
    "d": "the train leaves at noon",
    "e": "joy joy joy",
    "f": "quiet evening at home",
}


def review_until_done(
    client: TestClient,
    worker: WorkerContext,
    batch_url: str,
    client_headers: dict[str, str],
    reviewer_headers: dict[str, str],
    answer: Callable[[dict[str, Any]], object],
    rounds: int = 100,
) -> dict[str, Any]:
    """Run the worker and answer every review lease of the emotions task with ``answer(lease)`` until the batch is
    done and nothing waits for review; returns the batch's status."""
    worker.settings.worker_poll_s = 0
    for _ in range(rounds):
        _drain_without_waiting(worker)
        reviewed = 0
        while (lease := client.post("/v1/tasks/emotions/review/next", headers=reviewer_headers)).status_code == 200:
            item = lease.json()
            resolved = client.post(
                f"/v1/tasks/emotions/review/{item['item_id']}/resolve",
                json={"label": answer(item)},
                headers=reviewer_headers,
            )
            assert resolved.status_code == 200, resolved.text
            reviewed += 1
        status: dict[str, Any] = client.get(batch_url, headers=client_headers).json()
        if status["done"] and status["counts"]["review"] == 0 and not reviewed:
            return status
    return status


def _problem(response: object, status: int, field: str) -> None:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert response.headers["content-type"].startswith("application/problem+json")  # type: ignore[attr-defined]
    assert field in json.dumps(body), body


def test_a_multi_label_task_from_creation_to_export(
    client: TestClient,
    client_headers: dict[str, str],
    reviewer_headers: dict[str, str],
    fake_worker: WorkerContext,
    settings: Settings,
) -> None:
    created = client.post("/v1/tasks", json=TASK, headers=client_headers)
    assert created.status_code == 201, created.text
    task = created.json()
    assert task["kind"] == "multi_label" and task["template"] == "multi_label/chatml"
    assert task["examples"] == [{"text": "joy and sadness at once", "label": ["joy", "sadness"]}]
    for bad, field in [
        ({**TASK, "name": "x1", "labels": [{"name": f"l{i}"} for i in range(9)]}, "at most 8 labels"),
        ({**TASK, "name": "x2", "examples": [{"text": "t", "label": ["fear"]}]}, "fear"),
        ({**TASK, "name": "x3", "template": "classify/chatml"}, "prompts/multi_label"),
        ({**TASK, "name": "x4", "kind": "single_label", "examples": []}, "prompts/multi_label"),
    ]:
        response = client.post(
            "/v1/tasks", json={**bad, "template": bad.get("template", "multi_label/chatml")}, headers=client_headers
        )
        _problem(response, 422, field)

    name = client.get("/v1/review/me", headers=reviewer_headers).json()["name"]
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    assert client.put(f"/v1/tasks/emotions/reviewers/{name}", headers=admin).status_code == 200
    batch = client.post(
        "/v1/tasks/emotions/batches",
        json={"items": [{"id": key, "text": text} for key, text in TEXTS.items()]},
        headers=client_headers,
    )
    assert batch.status_code == 202, batch.text
    _drain_without_waiting(fake_worker)

    # Nothing is certified yet: every item waits for review, the teacher's set as its suggestion.
    seen = {}
    while (lease := client.post("/v1/tasks/emotions/review/next", headers=reviewer_headers)).status_code == 200:
        item = lease.json()
        seen[item["external_id"]] = item
        if not item["blind"]:
            expected = [label for label in ("anger", "joy", "sadness") if label in item["text"].split()]
            assert item["suggestion"] == expected, item
            assert set(item["probs"]) == {"anger", "joy", "sadness"}
            assert all((p > 0.5) == (label in expected) for label, p in item["probs"].items())
        if item["external_id"] == "d":
            _problem(
                client.post(
                    f"/v1/tasks/emotions/review/{item['item_id']}/resolve",
                    json={"label": ["fear"]},
                    headers=reviewer_headers,
                ),
                422,
                "fear",
            )
            _problem(
                client.post(
                    f"/v1/tasks/emotions/review/{item['item_id']}/resolve",
                    json={"label": "joy"},
                    headers=reviewer_headers,
                ),
                422,
                "list of its labels",
            )
        answer = [] if item["external_id"] in "df" else ["sadness", "anger"] if item["external_id"] == "c" else None
        if answer is None:
            answer = [label for label in ("anger", "joy", "sadness") if label in item["text"].split()]
        resolved = client.post(
            f"/v1/tasks/emotions/review/{item['item_id']}/resolve", json={"label": answer}, headers=reviewer_headers
        )
        assert resolved.status_code == 200, resolved.text
        assert resolved.json()["label"] == sorted(answer, key=["anger", "joy", "sadness"].index)
    assert set(seen) == set(TEXTS)
    assert not any(item["blind"] for item in seen.values()), "a budget this small draws nothing at random"

    agreement = client.get("/v1/tasks/emotions/review/agreement", headers=reviewer_headers).json()
    assert set(agreement["per_label"]) == {"anger", "joy", "sadness"}, "a multi-label task's agreement per label"

    labels = client.get(f"{batch.json()['url']}/labels", headers=client_headers).json()["items"]
    by_id = {row["item_id"]: row["label"] for row in labels}
    assert by_id == {"a": ["joy"], "b": ["anger"], "c": ["anger", "sadness"], "d": [], "e": ["joy"], "f": []}

    # A lead's confusion is over the labels in the sets, an empty set as "(no label)"; every answer agreed here.
    _login(client, "lead", settings)
    assert client.get("/ui/tasks/emotions").status_code == 200
    assert "<svg" in client.get("/ui/tasks/emotions/charts/confusion.svg").text
    cells = {
        (c["human"], c["machine"]): c["items"] for c in client.get("/ui/tasks/emotions/data/confusion.json").json()
    }
    diagonal = {h: n for (h, m), n in cells.items() if h == m}
    assert diagonal == {"anger": 2, "joy": 2, "sadness": 1, "(no label)": 2}
    assert sum(cells.values()) == sum(diagonal.values())

    exported = client.get("/v1/tasks/emotions/export?format=jsonl", headers=client_headers)
    rows = [json.loads(line) for line in exported.text.splitlines()]
    assert {row["external_id"]: row["label"] for row in rows} == by_id
    as_csv = client.get("/v1/tasks/emotions/export?format=csv", headers=client_headers).text
    cells = {row["external_id"]: json.loads(row["label"]) for row in csv.DictReader(io.StringIO(as_csv))}
    assert cells == by_id
    config = client.get("/v1/tasks/emotions/labelstudio/config", headers=client_headers).text
    assert 'choice="multiple"' in config
    studio = client.get("/v1/tasks/emotions/export?format=labelstudio", headers=client_headers).json()
    annotated = {task["data"]["external_id"]: task["annotations"][0]["result"] for task in studio}
    assert annotated["c"][0]["value"]["choices"] == ["anger", "sadness"] and annotated["d"] == []
    # Back from Label Studio: one more label on c, and none on a (an annotation with nothing chosen).
    annotated_c = {"result": [{**annotated["c"][0], "value": {"choices": ["anger", "joy", "sadness"]}}]}
    for task in studio:
        if task["data"]["external_id"] == "c":
            task["annotations"].append({**annotated_c, "completed_by": {"email": "ann@example.org"}})
        if task["data"]["external_id"] == "a":
            task["annotations"].append({"result": [], "completed_by": 7})
    back = client.post("/v1/tasks/emotions/import?format=labelstudio", json=studio, headers=client_headers)
    assert back.status_code == 200, back.text  # every row names an item: no new batch
    assert back.json()["labeled"] == 2
    again = client.get("/v1/tasks/emotions/export?format=jsonl", headers=client_headers).text
    final = {json.loads(line)["external_id"]: json.loads(line) for line in again.splitlines()}
    assert (
        final["c"]["label"] == ["anger", "joy", "sadness"] and final["c"]["reviewer"] == "labelstudio:ann@example.org"
    )
    assert final["a"]["label"] == []
    studio[0]["annotations"].append({"result": [{**annotated["c"][0], "value": {"choices": ["joy", "awe"]}}]})
    _problem(
        client.post("/v1/tasks/emotions/import?format=labelstudio", json=studio, headers=client_headers),
        422,
        "0.annotations",
    )
    by_id |= {"a": [], "c": ["anger", "joy", "sadness"]}

    upload = 'id,text,labels\ng,so much joy and anger,"[""joy"", ""anger""]"\nh,nothing at all,[]\n'
    imported = client.post(
        "/v1/tasks/emotions/import?format=csv&label_field=labels", content=upload.encode(), headers=client_headers
    )
    assert imported.status_code == 202, imported.text
    assert imported.json()["labeled"] == 2
    again = client.get("/v1/tasks/emotions/export?format=jsonl", headers=client_headers).text
    labeled = {json.loads(line)["external_id"]: json.loads(line)["label"] for line in again.splitlines()}
    assert labeled["g"] == ["anger", "joy"] and labeled["h"] == [] and labeled["c"] == by_id["c"]
    bad = 'id,text,labels\ni,x,"[""fear""]"\nj,y,joy\nk,z,[]\n'
    _problem(
        client.post(
            "/v1/tasks/emotions/import?format=csv&label_field=labels", content=bad.encode(), headers=client_headers
        ),
        422,
        "rows 0, 1",
    )
    assert client.post("/v1/tasks/emotions/students", json={}, headers=client_headers).status_code == 202


def test_the_filter_certifies_and_accepts_whole_label_sets(
    client: TestClient, client_headers: dict[str, str], reviewer_headers: dict[str, str], fake_worker: WorkerContext
) -> None:
    """The keyword teacher gives the right set of an item that names its emotions, and a wrong one (no emotion)
    of an item that only hints at them; reviewers answer from gold. Cold start certifies the threshold on whole
    sets, after which accepted sets are right and the bound holds."""
    rng = random.Random(1)
    labels = ("anger", "joy", "sadness")
    gold: dict[str, list[str]] = {}
    texts = {}
    for i in range(300):
        present = [label for label in labels if rng.random() < 0.35]
        hinted = rng.random() < 0.02 and present
        words = ["so", "very", *(["felt", "it"] if hinted else present), "today", str(i)]
        gold[f"x{i}"], texts[f"x{i}"] = present, " ".join(words)
    assert client.post("/v1/tasks", json={**TASK, "review_budget": None}, headers=client_headers).status_code == 201
    name = client.get("/v1/review/me", headers=reviewer_headers).json()["name"]
    client.put(f"/v1/tasks/emotions/reviewers/{name}", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    batch = client.post(
        "/v1/tasks/emotions/batches",
        json={"items": [{"id": key, "text": text} for key, text in texts.items()]},
        headers=client_headers,
    ).json()
    status = review_until_done(
        client, fake_worker, batch["url"], client_headers, reviewer_headers, lambda item: gold[item["external_id"]]
    )
    # How many are accepted depends on when the certificate lands among the chunks (18 to over 100 seen): what must
    # hold is that some are, and that they are right.
    assert status["counts"]["accepted"] > 0, status
    rows = client.get(batch["labels_url"], params={"limit": 500}, headers=client_headers).json()["items"]
    machine = [row for row in rows if row["source"] == "teacher"]
    assert len(machine) == status["counts"]["accepted"]
    wrong = [row["item_id"] for row in machine if row["label"] != gold[row["item_id"]]]
    # A set is wrong when it differs from the reviewer's at all: here only the hinted items' empty sets.
    assert all(texts[item].startswith("so very felt it") for item in wrong)
    assert len(wrong) <= 0.1 * len(machine), wrong
    quality = client.get("/v1/tasks/emotions/quality", headers=client_headers).json()
    assert quality["threshold"] is not None and quality["error_bound"] <= 0.1, quality
