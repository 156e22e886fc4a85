"""Schemathesis over every operation of the OpenAPI schema, as admin, on both stores: no generated request, valid
or not, may get a 5xx. Runs derandomized (the same cases every run) so a red run is reproducible; a task named
"sms" with a batch exists, and every {task} in a path is set to it, so the deeper operations get past their 404s."""

from __future__ import annotations

from typing import Any

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error

from service.config import Settings
from service.main import create_app
from tests.conftest import ADMIN_KEY, SPAM_TASK

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
EXAMPLES_PER_OPERATION = 15


def test_no_request_gets_a_server_error(settings: Settings) -> None:
    app = create_app(settings)
    with TestClient(app) as client:
        assert client.post("/v1/tasks", json=SPAM_TASK, headers=ADMIN).status_code == 201
        items = [{"id": f"m{i}", "text": f"message {i}"} for i in range(3)]
        assert client.post("/v1/tasks/sms/batches", json={"items": items}, headers=ADMIN).status_code == 202
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 30
        for operation in operations:

            @given(case=operation.as_strategy())
            @hypothesis_settings(
                max_examples=EXAMPLES_PER_OPERATION,
                derandomize=True,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def no_server_error(case: Any) -> None:
                if "task" in (case.path_parameters or {}):
                    case.path_parameters["task"] = "sms"
                case.call_and_validate(headers=ADMIN, checks=[not_a_server_error])

            no_server_error()
    app.state.engine.dispose()
