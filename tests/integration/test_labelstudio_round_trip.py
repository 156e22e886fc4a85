"""The round trip against a real Label Studio server: Understudy exports a task and its labeling config, Label
Studio takes both, annotators answer the items waiting for review through its API, and its export comes back
into the same task: the task keeps its item count, and every annotation lands on its item under the annotator's
name, at the annotation's time, out of the review queue."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from service.backends.models import default_cache_dir
from service.config import Settings
from service.jobs import worker
from service.jobs.context import WorkerContext
from tests.conftest import SPAM_TASK
from tests.integration.labelstudio_server import EMAIL, LabelStudio, running_label_studio

pytestmark = [pytest.mark.integration]
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudio]:
    started = time.perf_counter()
    with running_label_studio(default_cache_dir(), tmp_path_factory.mktemp("label-studio")) as server:
        TIMINGS["install_and_start_s"] = time.perf_counter() - started
        yield server
    print(f"\nLabel Studio round trip timings: {json.dumps({k: round(v, 1) for k, v in TIMINGS.items()})}")


def test_annotations_from_label_studio_land_on_the_same_items(
    label_studio: LabelStudio,
    client: TestClient,
    client_headers: dict[str, str],
    settings: Settings,
    fake_worker: WorkerContext,
) -> None:
    client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers)
    items = [{"id": f"m{i}", "text": f"message {i}: {'win a free prize' if i % 3 else 'see you'}"} for i in range(12)]
    client.post("/v1/tasks/sms/batches", json={"items": items}, headers=client_headers)
    while worker.run_once(fake_worker):
        pass
    started = time.perf_counter()
    exported = client.get("/v1/tasks/sms/export", params={"format": "labelstudio"}, headers=client_headers).json()
    config = client.get("/v1/tasks/sms/labelstudio/config", headers=client_headers).text
    waiting = {task["data"]["external_id"] for task in exported if task["meta"]["state"] == "review"}
    assert waiting, "the fake teacher leaves items for review"

    project = label_studio.call(
        "POST", "/api/projects", json={"title": f"sms {time.time_ns()}", "label_config": config}
    )
    label_studio.call("POST", f"/api/projects/{project['id']}/import", json=exported)
    tasks = label_studio.call("GET", "/api/tasks", params={"project": project["id"], "page_size": 100})["tasks"]
    assert len(tasks) == len(items), "Label Studio took every item"
    me = label_studio.call("GET", "/api/current-user/whoami")
    answers = {}
    for number, task in enumerate(t for t in tasks if t["data"]["external_id"] in waiting):
        label = ("ham", "spam")[number % 2]
        result = [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]
        label_studio.call("POST", f"/api/tasks/{task['id']}/annotations/", json={"result": result})
        answers[task["data"]["external_id"]] = label
    back = label_studio.call("GET", f"/api/projects/{project['id']}/export", params={"exportType": "JSON"})
    TIMINGS["export_import_annotate_export_s"] = time.perf_counter() - started

    started = time.perf_counter()
    answer = client.post(
        "/v1/tasks/sms/import", params={"format": "labelstudio"}, content=json.dumps(back), headers=client_headers
    )
    TIMINGS["import_back_s"] = time.perf_counter() - started
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert (result["matched"], result["added"], result["labeled"]) == (len(items), 0, len(answers))

    rows = {
        row["external_id"]: row
        for row in map(json.loads, client.get("/v1/tasks/sms/export", headers=client_headers).content.splitlines())
    }
    annotated = {a["task"]: a for task in back for a in task["annotations"]}
    assert len(annotated) == len(answers)
    for task in back:
        external_id = task["data"]["external_id"]
        if external_id not in answers:
            continue
        row = rows[external_id]
        assert (row["label"], row["source"], row["state"]) == (answers[external_id], "human", "resolved")
        who = task["annotations"][-1]["completed_by"]
        assert row["reviewer"] in (f"labelstudio:{who}", f"labelstudio:{EMAIL}") and str(me["id"]) in row["reviewer"]
        assert row["labeled_at"][:19] == task["annotations"][-1]["created_at"][:19]
    listed = client.get("/v1/tasks/sms/export", params={"format": "labelstudio"}, headers=client_headers).json()
    assert len(listed) == len(items), "the task keeps its item count"
    again = client.post(
        "/v1/tasks/sms/import", params={"format": "labelstudio"}, content=json.dumps(back), headers=client_headers
    ).json()
    assert (again["labeled"], again["unchanged"]) == (0, len(items))
