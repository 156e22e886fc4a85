"""API keys through their life: created with an expiry, listed without secrets, used (last use recorded), rotated
with a grace period, revoked; the environment's admin key may change between starts. On both stores."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from service import db
from service.cli import app as cli
from service.config import Settings, get_settings
from service.main import create_app


def _bearer(plain: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {plain}"}


def test_keys_are_listed_rotated_with_grace_and_revoked(client: TestClient, admin_headers: dict[str, str]) -> None:
    made = client.post("/v1/keys", json={"name": "ci", "role": "client"}, headers=admin_headers)
    assert made.status_code == 201 and made.json()["key"].startswith("us_") and made.json()["active"]
    first = made.json()["key"]
    assert client.get("/v1/tasks", headers=_bearer(first)).status_code == 200
    listed = {row["name"]: row for row in client.get("/v1/keys", headers=admin_headers).json()}
    assert "key" not in listed["ci"] and listed["ci"]["last_used_at"] is not None, "use is recorded, no secret"
    assert client.get("/v1/keys", headers=_bearer(first)).status_code == 403, "only an admin sees keys"

    rotated = client.post("/v1/keys/ci/rotate", json={"grace_s": 600}, headers=admin_headers).json()
    second = rotated["key"]
    assert second != first and rotated["previous_valid_until"] is not None and rotated["role"] == "client"
    assert client.get("/v1/tasks", headers=_bearer(first)).status_code == 200, "the old secret, in its grace"
    assert client.get("/v1/tasks", headers=_bearer(second)).status_code == 200
    third = client.post("/v1/keys/ci/rotate", json={"grace_s": 0}, headers=admin_headers).json()["key"]
    stale = client.get("/v1/tasks", headers=_bearer(second))
    assert stale.status_code == 401 and "not known" in stale.json()["detail"], "no grace: the old one stops at once"
    assert client.get("/v1/tasks", headers=_bearer(first)).status_code == 401, "only one previous secret is kept"

    revoked = client.post("/v1/keys/ci/revoke", headers=admin_headers)
    assert revoked.status_code == 200 and not revoked.json()["active"] and revoked.json()["revoked_at"]
    refused = client.get("/v1/tasks", headers=_bearer(third))
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    again = client.post("/v1/keys/ci/rotate", json={}, headers=admin_headers)
    assert again.status_code == 409 and "revoked" in again.json()["detail"], "a revoked key stays revoked"
    assert client.post("/v1/keys/nobody/revoke", headers=admin_headers).status_code == 404
    too_long = client.post("/v1/keys/ci/rotate", json={"grace_s": 10**9}, headers=admin_headers)
    assert too_long.status_code == 422 and too_long.headers["content-type"] == "application/problem+json"


def test_a_key_stops_at_its_expiry(client: TestClient, admin_headers: dict[str, str]) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=1.5)).isoformat()
    plain = client.post(
        "/v1/keys", json={"name": "temp", "role": "client", "expires_at": soon}, headers=admin_headers
    ).json()["key"]
    assert client.get("/v1/tasks", headers=_bearer(plain)).status_code == 200
    time.sleep(1.6)
    expired = client.get("/v1/tasks", headers=_bearer(plain))
    assert expired.status_code == 401 and "expired" in expired.json()["detail"], "even while the key is cached"
    past = client.post(
        "/v1/keys", json={"name": "late", "role": "client", "expires_at": "2020-01-01T00:00:00Z"}, headers=admin_headers
    )
    assert past.status_code == 422 and past.json()["field"] == "expires_at"
    naive = client.post(
        "/v1/keys", json={"name": "naive", "role": "client", "expires_at": "2030-01-01T00:00:00"}, headers=admin_headers
    )
    assert naive.status_code == 422, "an expiry names its time zone"


def test_the_environment_admin_key_can_change_between_starts(settings: Settings, client: TestClient) -> None:
    changed = settings.model_copy(update={"admin_key": "a-new-admin-secret"})
    app = create_app(changed)
    with TestClient(app) as restarted:
        assert restarted.get("/v1/keys", headers=_bearer("a-new-admin-secret")).status_code == 200
        old = restarted.get("/v1/keys", headers=_bearer(settings.admin_key))
        assert old.status_code == 401
        names = [row["name"] for row in restarted.get("/v1/keys", headers=_bearer("a-new-admin-secret")).json()]
        assert names.count("admin") == 1
    db.engine_of(app.state.sessions).dispose()


def test_cli_lists_rotates_and_revokes_keys(
    settings: Settings, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNDERSTUDY_DATABASE_URL", settings.resolved_database_url)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        made = runner.invoke(cli, ["create-key", "bot", "--expires-in-days", "7", "--project", "alpha"])
        assert made.exit_code == 0, made.output
        listed = runner.invoke(cli, ["keys", "list"])
        assert listed.exit_code == 0 and "bot\tclient\talpha\tactive\texpires 20" in listed.output
        rotated = runner.invoke(cli, ["keys", "rotate", "bot", "--grace-s", "0"])
        assert rotated.exit_code == 0 and rotated.output.strip().startswith("us_")
        assert client.get("/v1/tasks", headers=_bearer(rotated.output.strip())).status_code == 200
        assert runner.invoke(cli, ["keys", "revoke", "bot"]).exit_code == 0
        assert "bot\tclient\talpha\trevoked" in runner.invoke(cli, ["keys", "list"]).output
        missing = runner.invoke(cli, ["keys", "revoke", "nobody"])
        assert missing.exit_code == 2 and "no API key named 'nobody'" in missing.output
        assert "Traceback" not in missing.output
    finally:
        get_settings.cache_clear()
