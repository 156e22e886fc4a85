"""POST /v1/tasks/{task}/predict: the promoted student answers synchronously, nothing is stored, concurrent requests
share model calls. On both stores."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx
from fastapi.testclient import TestClient

from service import db
from service.config import Settings
from service.ports import FloatArray
from service.store import students, tasks
from tests.conftest import SPAM_TASK
from tests.fakes import KeywordStudent


class CountingStudent(KeywordStudent):
    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict_proba(self, texts: Sequence[str]) -> FloatArray:
        self.calls.append(len(texts))
        return super().predict_proba(texts)


def _promote(settings: Settings, metrics: dict[str, object]) -> None:
    with db.transaction(db.open(settings)) as session:
        row = students.add(
            session, task_id=tasks.get_task(session, "sms").id, version="v1", path="fake/v1", metrics=metrics
        )
        students.set_promoted(session, row=row, promoted_flag=True)


def test_predict_answers_with_the_promoted_student_and_its_threshold(
    client: TestClient, client_headers: dict[str, str], settings: Settings
) -> None:
    assert client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers).status_code == 201
    none = client.post("/v1/tasks/sms/predict", json={"texts": ["hi"]}, headers=client_headers)
    assert none.status_code == 409 and "no promoted student" in none.json()["detail"]
    _promote(settings, {"threshold": 0.9, "threshold_error_bound": 0.04})
    student = CountingStudent()
    client.app.state.student_loader = lambda path: student  # type: ignore[attr-defined]
    response = client.post(
        "/v1/tasks/sms/predict", json={"texts": ["WIN a free prize now", "see you at lunch"]}, headers=client_headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["student"] == "v1" and body["threshold"] == 0.9
    spam, ham = body["predictions"]
    assert (spam["label"], spam["above_threshold"], spam["probs"]) == ("spam", True, {"ham": 0.05, "spam": 0.95})
    assert (ham["label"], ham["confidence"], ham["above_threshold"]) == ("ham", 0.6, False)
    counts = client.get("/v1/tasks/sms/quality", headers=client_headers).json()
    assert counts["accepted"] == 0, "nothing is stored"
    for bad in ({"texts": []}, {"texts": ["x"] * 1001}, {"texts": ["x" * (settings.max_text_chars + 1)]}, {}):
        refused = client.post("/v1/tasks/sms/predict", json=bad, headers=client_headers)
        assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"


def test_concurrent_requests_share_model_calls(
    client: TestClient, client_headers: dict[str, str], settings: Settings
) -> None:
    assert client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers).status_code == 201
    _promote(settings, {"threshold": 1.01, "threshold_error_bound": None})
    student = CountingStudent()
    client.app.state.student_loader = lambda path: student  # type: ignore[attr-defined]

    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=client_headers) as http:
            return await asyncio.gather(
                *(http.post("/v1/tasks/sms/predict", json={"texts": [f"free prize {i}"]}) for i in range(40))
            )

    answers = asyncio.run(burst())
    assert all(a.status_code == 200 for a in answers)
    assert all(a.json()["predictions"][0]["above_threshold"] is False for a in answers), "no certified threshold"
    assert all(a.json()["threshold"] is None for a in answers)
    assert sum(student.calls) == 40 and len(student.calls) < 40, f"batched: {student.calls}"


def test_a_promotion_through_the_api_is_answered_at_once(
    client: TestClient, client_headers: dict[str, str], settings: Settings
) -> None:
    """The promoted student is cached for a moment per task; promoting another version clears it."""
    assert client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers).status_code == 201
    _promote(settings, {"threshold": 0.9, "threshold_error_bound": 0.04})
    client.app.state.student_loader = lambda path: KeywordStudent()  # type: ignore[attr-defined]
    ask = {"texts": ["win cash"]}
    assert client.post("/v1/tasks/sms/predict", json=ask, headers=client_headers).json()["student"] == "v1"
    with db.transaction(db.open(settings)) as session:
        students.add(session, task_id=tasks.get_task(session, "sms").id, version="v2", path="fake/v2", metrics={})
    admin = {"Authorization": "Bearer test-admin-key"}
    promoted = client.post("/v1/tasks/sms/students/v2/promote", json={"force": True}, headers=admin)
    assert promoted.status_code == 200, promoted.text
    answer = client.post("/v1/tasks/sms/predict", json=ask, headers=client_headers).json()
    assert answer["student"] == "v2" and answer["threshold"] is None, "v2 has no certified threshold"
