"""Client keys scoped to a project see and change only its tasks: every route under /v1/tasks/{task} answers a key
from another project 404, as for a task that does not exist, and lists, jobs and creation keep to the project."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from service.jobs import worker
from service.jobs.context import WorkerContext
from tests.conftest import SPAM_TASK

PATH_VALUES = {
    "task": "sms",
    "batch_id": "1",
    "item_id": "1",
    "version": "v1",
    "reviewer": "someone",
    "job_id": "1",
    "pair_id": "1",
}


def _key(client: TestClient, admin: dict[str, str], name: str, project: str | None) -> dict[str, str]:
    made = client.post("/v1/keys", json={"name": name, "role": "client", "project": project}, headers=admin)
    assert made.status_code == 201, made.text
    assert made.json()["project"] == project
    return {"Authorization": f"Bearer {made.json()['key']}"}


def test_a_key_from_another_project_gets_404_on_every_task_route(
    client: TestClient, admin_headers: dict[str, str], fake_worker: WorkerContext
) -> None:
    alpha = _key(client, admin_headers, "alpha-ci", "alpha")
    beta = _key(client, admin_headers, "beta-ci", "beta")
    created = client.post("/v1/tasks", json=SPAM_TASK, headers=alpha)
    assert created.status_code == 201 and created.json()["project"] == "alpha"
    batch = client.post("/v1/tasks/sms/batches", json={"items": [{"id": "a", "text": "hi"}]}, headers=alpha).json()
    while worker.run_once(fake_worker):
        pass
    routes = [
        (method.upper(), path)
        for path, operations in client.get("/openapi.json").json()["paths"].items()
        if "{task}" in path
        for method in operations
    ]
    assert len(routes) > 20, routes
    leaked = []
    for method, template in routes:
        path = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], template)
        response = client.request(method, path, headers=beta, json={})
        # A route only admins or reviewers may use answers a client key 403 before it looks at the task.
        if response.status_code not in (403, 404) or "sms" in response.text.replace("'sms'", ""):
            leaked.append((method, template, response.status_code, response.text[:200]))
        if response.status_code == 403:
            assert "role" in response.json()["detail"], (method, template, response.text)
    assert leaked == []
    assert client.get("/v1/tasks/sms", headers=beta).json()["detail"] == "no task named 'sms'"
    assert client.get("/v1/tasks/sms", headers=alpha).status_code == 200, "the check can pass"
    assert client.get("/v1/tasks/sms/quality", headers=alpha).status_code == 200
    assert client.get(batch["url"], headers=alpha).status_code == 200
    assert [task["name"] for task in client.get("/v1/tasks", headers=beta).json()] == []
    assert [task["name"] for task in client.get("/v1/tasks", headers=alpha).json()] == ["sms"]
    assert client.get(batch["job_url"], headers=beta).status_code == 404
    assert client.get(batch["job_url"], headers=alpha).status_code == 200
    elsewhere = client.post("/v1/tasks", json={**SPAM_TASK, "name": "other", "project": "alpha"}, headers=beta)
    assert elsewhere.status_code == 403 and "project 'beta'" in elsewhere.json()["detail"]
    unscoped = _key(client, admin_headers, "ops", None)
    assert {t["name"] for t in client.get("/v1/tasks", headers=unscoped).json()} == {"sms"}, "an unscoped key"
    reviewer = client.post(
        "/v1/keys", json={"name": "r", "role": "reviewer", "project": "alpha"}, headers=admin_headers
    )
    assert reviewer.status_code == 422 and reviewer.json()["field"] == "project"
