"""Tasks and batches over HTTP: auth, idempotency, validation, paging."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from service.config import Settings
from tests.conftest import SPAM_TASK


def _items(n: int, prefix: str = "i") -> list[dict[str, str]]:
    return [{"id": f"{prefix}{i}", "text": f"message number {i}"} for i in range(n)]


def test_keys_roles(client: TestClient, client_headers: dict[str, str], reviewer_headers: dict[str, str]) -> None:
    assert client.post("/v1/tasks", json=SPAM_TASK).status_code == 401
    assert client.post("/v1/tasks", json=SPAM_TASK, headers={"X-API-Key": "nope"}).status_code == 401
    forbidden = client.post("/v1/tasks", json=SPAM_TASK, headers=reviewer_headers)
    assert forbidden.status_code == 403
    assert forbidden.headers["content-type"] == "application/problem+json"
    assert client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers).status_code == 201
    assert client.get("/v1/tasks/sms", headers=reviewer_headers).status_code == 200
    assert client.post("/v1/keys", json={"name": "x", "role": "client"}, headers=client_headers).status_code == 403


def test_keys_are_stored_hashed(client: TestClient, admin_headers: dict[str, str], settings: Settings) -> None:
    created = client.post("/v1/keys", json={"name": "k1", "role": "reviewer"}, headers=admin_headers).json()
    from sqlalchemy import create_engine, text

    engine = create_engine(settings.resolved_database_url)
    with engine.connect() as connection:
        stored = [row[0] for row in connection.execute(text("SELECT key_hash FROM api_keys"))]
    engine.dispose()
    assert created["key"] not in stored
    assert all(len(value) == 64 for value in stored)


def test_batch_roundtrip_with_idempotency(client: TestClient, client_headers: dict[str, str]) -> None:
    client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers)
    headers = {**client_headers, "Idempotency-Key": "abc"}
    first = client.post("/v1/tasks/sms/batches", json={"items": _items(250)}, headers=headers)
    assert first.status_code == 202
    assert first.headers["location"] == first.json()["url"]
    again = client.post("/v1/tasks/sms/batches", json={"items": _items(250)}, headers=headers)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    changed = client.post("/v1/tasks/sms/batches", json={"items": _items(3)}, headers=headers)
    assert changed.status_code == 409
    status = client.get(first.json()["url"], headers=client_headers).json()
    assert status["counts"]["queued"] == 250 and status["item_count"] == 250 and not status["done"]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = client.get(first.json()["labels_url"], params=params, headers=client_headers).json()
        seen += [row["item_id"] for row in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"i{i}" for i in range(250)]


def test_ten_thousand_items_in_one_request(client: TestClient, client_headers: dict[str, str]) -> None:
    client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers)
    response = client.post("/v1/tasks/sms/batches", json={"items": _items(10_000)}, headers=client_headers)
    assert response.status_code == 202
    assert response.json()["item_count"] == 10_000
    too_many = client.post("/v1/tasks/sms/batches", json={"items": _items(10_001)}, headers=client_headers)
    assert too_many.status_code == 422 and too_many.json()["field"] == "items"


@pytest.mark.parametrize(
    ("items", "field"),
    [
        ([{"id": "a", "text": ""}], "items.0.text"),
        ([{"id": "a", "text": "   "}], "items.0.text"),
        ([{"id": "a", "text": 42}], "items.0.text"),
        ([{"id": "a", "text": None}], "items.0.text"),
        ([{"id": "a", "text": "ok"}, {"id": "a", "text": "dup"}], "items.1.id"),
        ([{"id": "a", "text": "x" * 1_000_001}], "items.0.text"),
        ([], "items"),
    ],
)
def test_bad_items_store_nothing(
    client: TestClient, client_headers: dict[str, str], items: list[dict[str, object]], field: str
) -> None:
    client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers)
    response = client.post("/v1/tasks/sms/batches", json={"items": items}, headers=client_headers)
    assert response.status_code == 422, response.text
    body = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert body["field"] == field and body["type"].endswith("invalid-input")
    ok = client.post("/v1/tasks/sms/batches", json={"items": _items(1)}, headers=client_headers).json()
    assert ok["id"] == 1, "the rejected request must not have created a batch"


def test_malformed_json_unknown_things_and_body_limit(client: TestClient, client_headers: dict[str, str]) -> None:
    client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers)
    bad = client.post(
        "/v1/tasks/sms/batches",
        content=b'{"items":\n  [{"text": }]}',
        headers={**client_headers, "content-type": "application/json"},
    )
    assert bad.status_code == 400 and bad.json()["type"].endswith("malformed-json")
    assert bad.json()["detail"] == "the request body is not valid JSON: Expecting value at line 2, column 13"
    assert client.post("/v1/tasks/nope/batches", json={"items": _items(1)}, headers=client_headers).status_code == 404
    assert client.get("/v1/tasks/sms/batches/999", headers=client_headers).status_code == 404
    huge = client.post(
        "/v1/tasks/sms/batches",
        content=b"x" * (33 * 1024 * 1024),
        headers={**client_headers, "content-type": "application/json"},
    )
    assert huge.status_code == 413 and huge.json()["type"].endswith("payload-too-large")
    cursor = client.get("/v1/tasks/sms/batches/1/labels?cursor=abc", headers=client_headers)
    assert cursor.status_code in (404, 422)


def test_task_validation(client: TestClient, client_headers: dict[str, str]) -> None:
    assert client.post("/v1/tasks", json={**SPAM_TASK, "name": "Bad Name"}, headers=client_headers).status_code == 422
    dup_labels = {**SPAM_TASK, "labels": [{"name": "a"}, {"name": "a"}]}
    assert client.post("/v1/tasks", json=dup_labels, headers=client_headers).status_code == 422
    bad_template = client.post("/v1/tasks", json={**SPAM_TASK, "template": "nope/x"}, headers=client_headers)
    assert bad_template.status_code == 422 and bad_template.json()["field"] == "template"
    assert client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers).status_code == 201
    assert client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers).status_code == 409
    assert client.get("/v1/tasks/unknown", headers=client_headers).status_code == 404


def test_ids_past_the_id_range_and_odd_cursors_are_422s(
    client: TestClient, client_headers: dict[str, str], admin_headers: dict[str, str]
) -> None:
    """Found by schemathesis: a path id past the id columns' range overflowed the database driver (500)."""
    client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers)
    batch = client.post("/v1/tasks/sms/batches", json={"items": _items(2)}, headers=client_headers).json()
    huge = str(2**31)
    for method, path in (
        ("GET", f"/v1/jobs/{huge}"),
        ("GET", f"/v1/tasks/sms/batches/{huge}"),
        ("POST", f"/v1/tasks/sms/review/{huge}/skip"),
        ("POST", f"/v1/tasks/sms/adjudication/{huge}"),
        ("GET", "/v1/tasks/sms/batches/0"),
    ):
        answer = client.request(method, path, headers=admin_headers, json={"label": "ham"})
        assert answer.status_code == 422, (path, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
    assert client.get(f"/v1/tasks/sms/batches/{2**31 - 1}", headers=client_headers).status_code == 404
    for cursor in (huge, str(2**63), "²", "-1", "1" * 40):
        page = client.get(
            f"/v1/tasks/sms/batches/{batch['id']}/labels", params={"cursor": cursor}, headers=client_headers
        )
        assert page.status_code == 422 and page.json()["field"] == "cursor", cursor


def test_nul_and_unpaired_surrogates_are_422s_and_store_nothing(
    client: TestClient, client_headers: dict[str, str]
) -> None:
    """Found by schemathesis: PostgreSQL refuses NUL in text and JSON columns, and a lone surrogate is not UTF-8;
    both reached the database and came back as 500s."""
    client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers)
    for item in (
        {"id": "a\x00b", "text": "hello"},
        {"id": "a", "text": "he\x00llo"},
        {"id": "a", "text": "hello", "meta": {"k\x00": 1}},
        {"id": "a", "text": "hello", "meta": {"k": ["x", {"y": "\x00"}]}},
    ):
        answer = client.post("/v1/tasks/sms/batches", json={"items": [item]}, headers=client_headers)
        assert answer.status_code == 422, answer.text
        assert "NUL" in answer.json()["detail"] and "\x00" not in answer.json()["detail"]
    # A lone surrogate can only arrive as a JSON escape.
    lone = b'{"items": [{"id": "a", "text": "bad \\ud800 text"}]}'
    answer = client.post(
        "/v1/tasks/sms/batches", content=lone, headers={**client_headers, "content-type": "application/json"}
    )
    assert answer.status_code == 422 and "items.0.text" in answer.json()["detail"]
    csv_body = b"id,text\nr1,fine\nr2,has \x00 nul\n"
    imported = client.post("/v1/tasks/sms/import?format=csv", content=csv_body, headers=client_headers)
    assert imported.status_code == 422 and imported.json()["field"] == "rows.1", imported.text
    studio = b'[{"id": 1, "data": {"text": "ok \\u0000"}}]'
    imported = client.post("/v1/tasks/sms/import?format=labelstudio", content=studio, headers=client_headers)
    assert imported.status_code == 422 and imported.json()["field"] == "0", imported.text
    assert client.get("/v1/tasks/sms", headers=client_headers).status_code == 200
    assert client.post("/v1/tasks/sms/batches", json={"items": _items(1)}, headers=client_headers).status_code == 202


def test_every_time_is_utc_with_its_offset_after_a_read_back(
    client: TestClient, client_headers: dict[str, str], admin_headers: dict[str, str]
) -> None:
    """SQLite keeps no offset: times read back from it are UTC all the same, in GET responses as in POST ones."""
    created = client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers).json()
    batch = client.post("/v1/tasks/sms/batches", json={"items": _items(2)}, headers=client_headers).json()
    key = client.post("/v1/keys", json={"name": "k-utc", "role": "reviewer"}, headers=admin_headers).json()
    read = [
        client.get("/v1/tasks/sms", headers=client_headers).json()["created_at"],
        client.get(batch["url"], headers=client_headers).json()["created_at"],
        *[k["created_at"] for k in client.get("/v1/keys", headers=admin_headers).json() if k["name"] == "k-utc"],
    ]
    job = client.get(batch["job_url"], headers=client_headers).json()
    assert len(read) == 3
    for moment in [created["created_at"], batch["created_at"], key["created_at"], *read, job["updated_at"]]:
        assert moment.endswith("Z"), moment
