"""A spans task through the API on both stores: created with checked example spans, labeled by importing span sets
(JSONL, CSV with JSON strings, Label Studio ``labels`` results), exported the same ways; raw items get the
teacher's proposed spans and wait for review, where reviewers answer with corrected span sets; a promoted span
student labels what it is sure of and answers on /predict; the quality report and the lead's dashboard follow the
tagger's threshold and audits. Bad spans are refused whole with their rows and the reason."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Sequence
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service import db
from service.config import Settings
from service.jobs.bulk_label import label_file
from service.jobs.context import WorkerContext
from service.pipeline import span_sets
from service.pipeline.span_sets import Span
from service.store import students, tasks
from tests.api.test_dashboard import _login
from tests.api.test_loop import _drain_without_waiting
from tests.api.test_metrics import _samples
from tests.api.test_multi_label import _problem
from tests.conftest import ADMIN_KEY, assigned_reviewer, make_key

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}

TASK = {
    "name": "ents",
    "kind": "spans",
    "labels": [{"name": "person", "description": "a named person"}, {"name": "location"}],
    "instructions": "Find the people and places.",
    "examples": [
        {
            "text": "Ada lived in London",
            "label": [
                {"start": 13, "end": 19, "label": "location", "text": "London"},
                {"start": 0, "end": 3, "label": "person"},
            ],
        }
    ],
}
ROWS = [
    {
        "id": "a",
        "text": "Bob met Ann in Paris",
        "spans": [
            {"start": 0, "end": 3, "label": "person"},
            {"start": 8, "end": 11, "label": "person"},
            {"start": 15, "end": 20, "label": "location"},
        ],
    },
    {"id": "b", "text": "nothing here", "spans": []},
    {"id": "c", "text": "Rome is far", "spans": [{"start": 0, "end": 4, "label": "location", "text": "Rome"}]},
]


def _jsonl(rows: Sequence[dict[str, object]]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def _exported(client: TestClient, headers: dict[str, str]) -> dict[str, object]:
    text = client.get("/v1/tasks/ents/export?format=jsonl", headers=headers).text
    return {json.loads(line)["external_id"]: json.loads(line)["label"] for line in text.splitlines()}


def test_a_spans_task_is_created_imported_and_exported_with_checked_spans(
    client: TestClient, client_headers: dict[str, str], reviewer_headers: dict[str, str], fake_worker: WorkerContext
) -> None:
    created = client.post("/v1/tasks", json=TASK, headers=client_headers)
    assert created.status_code == 201, created.text
    task = created.json()
    assert task["kind"] == "spans" and task["template"] == "spans/chatml"
    assert task["examples"][0]["label"] == [
        {"start": 0, "end": 3, "label": "person"},
        {"start": 13, "end": 19, "label": "location"},
    ]
    overlapping = [{"start": 0, "end": 9, "label": "person"}, {"start": 4, "end": 9, "label": "location"}]
    for bad, fault in [
        ({**TASK, "name": "x1", "examples": [{"text": "Ada lived in London", "label": overlapping}]}, "overlap"),
        (
            {**TASK, "name": "x2", "examples": [{"text": "Ada", "label": [{"start": 0, "end": 3, "label": "pet"}]}]},
            "pet",
        ),
        ({**TASK, "name": "x3", "template": "classify/chatml"}, "prompts/spans/"),
        ({**TASK, "name": "x4", "kind": "single_label", "examples": [], "template": "spans/chatml"}, "outside"),
        ({**TASK, "name": "x5", "kind": "single_label", "examples": [], "labels": [{"name": "one"}]}, "at least 2"),
    ]:
        _problem(client.post("/v1/tasks", json=bad, headers=client_headers), 422, fault)
    one_label = {**TASK, "name": "people", "labels": [{"name": "person"}], "examples": []}
    assert client.post("/v1/tasks", json=one_label, headers=client_headers).status_code == 201

    bad_rows = [
        ROWS[0],
        {
            "id": "o",
            "text": "Ann Lee",
            "spans": [{"start": 0, "end": 7, "label": "person"}, {"start": 4, "end": 7, "label": "person"}],
        },
        {"id": "p", "text": "Ann", "spans": [{"start": 0, "end": 9, "label": "person"}]},
    ]
    refused = client.post(
        "/v1/tasks/ents/import?format=jsonl&label_field=spans", content=_jsonl(bad_rows), headers=client_headers
    )
    _problem(refused, 422, "rows 1, 2")
    assert "overlap" in refused.json()["detail"]
    assert _exported(client, client_headers) == {}, "a refused file imports nothing"

    imported = client.post(
        "/v1/tasks/ents/import?format=jsonl&label_field=spans", content=_jsonl(ROWS), headers=client_headers
    )
    assert imported.status_code == 202, imported.text
    assert imported.json()["labeled"] == 3
    _drain_without_waiting(fake_worker)
    batch = client.get(imported.json()["batch"]["url"], headers=client_headers).json()
    assert batch["done"] and batch["counts"]["review"] == 0, batch
    by_id = _exported(client, client_headers)
    assert by_id == {row["id"]: [{k: s[k] for k in ("start", "end", "label")} for s in row["spans"]] for row in ROWS}
    as_csv = client.get("/v1/tasks/ents/export?format=csv", headers=client_headers).text
    assert {row["external_id"]: json.loads(row["label"]) for row in csv.DictReader(io.StringIO(as_csv))} == by_id
    # Labeled imports wait for no review, and accept nothing: no tagger, no threshold.
    name = client.get("/v1/review/me", headers=reviewer_headers).json()["name"]
    assert client.put(f"/v1/tasks/ents/reviewers/{name}", headers=ADMIN).status_code == 200
    assert client.post("/v1/tasks/ents/review/next", headers=reviewer_headers).status_code == 204
    quality = client.get("/v1/tasks/ents/quality", headers=client_headers).json()
    assert quality["threshold"] is None and quality["accepted"] == 0 and quality["human_reviews"] == 3, quality

    config = client.get("/v1/tasks/ents/labelstudio/config", headers=client_headers).text
    assert '<Labels name="label" toName="text">' in config and '<Label value="person" hint="a named person"/>' in config
    studio = client.get("/v1/tasks/ents/export?format=labelstudio", headers=client_headers).json()
    results = {task["data"]["external_id"]: task["annotations"][0]["result"] for task in studio}
    assert results["b"] == []
    assert results["c"] == [
        {
            "from_name": "label",
            "to_name": "text",
            "type": "labels",
            "value": {"start": 0, "end": 4, "text": "Rome", "labels": ["location"]},
        }
    ]
    # Back from Label Studio: c's span relabeled by an annotator, b given one.
    for task in studio:
        if task["data"]["external_id"] == "c":
            span = {**results["c"][0], "value": {**results["c"][0]["value"], "labels": ["person"]}}
            task["annotations"].append({"result": [span], "completed_by": {"email": "ann@example.org"}})
        if task["data"]["external_id"] == "b":
            span = {"type": "labels", "value": {"start": 0, "end": 7, "text": "nothing", "labels": ["location"]}}
            task["annotations"].append({"result": [span], "completed_by": 7})
    back = client.post("/v1/tasks/ents/import?format=labelstudio", json=studio, headers=client_headers)
    assert back.status_code == 200, back.text
    assert back.json()["labeled"] == 2
    again = _exported(client, client_headers)
    assert again["c"] == [{"start": 0, "end": 4, "label": "person"}]
    assert again["b"] == [{"start": 0, "end": 7, "label": "location"}]
    wrong_text = {"type": "labels", "value": {"start": 0, "end": 4, "text": "Roma", "labels": ["person"]}}
    studio[-1]["annotations"].append({"result": [wrong_text]})
    _problem(client.post("/v1/tasks/ents/import?format=labelstudio", json=studio, headers=client_headers), 422, "Roma")

    upload = 'id,text,spans\nd,Ann went home,"[{""start"": 0, ""end"": 3, ""label"": ""person""}]"\ne,calm,[]\n'
    from_csv = client.post(
        "/v1/tasks/ents/import?format=csv&label_field=spans", content=upload.encode(), headers=client_headers
    )
    assert from_csv.status_code == 202, from_csv.text
    assert _exported(client, client_headers)["d"] == [{"start": 0, "end": 3, "label": "person"}]


class NamesTagger:
    """Tags every capitalised word a person, with a confidence of 0.9 for a text with one, 0.5 otherwise."""

    version = "v1"
    labels = ("person", "location")

    def predict_spans(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        answers = []
        for text in texts:
            spans, start = [], 0
            for word in text.split(" "):
                if word[:1].isupper():
                    spans.append(Span(start, start + len(word), "person"))
                start += len(word) + 1
            answers.append((span_sets.set_name(spans), 0.9 if len(spans) == 1 else 0.5))
        return answers


def test_predict_answers_with_a_span_student(
    client: TestClient, client_headers: dict[str, str], settings: Settings
) -> None:
    assert client.post("/v1/tasks", json=TASK, headers=client_headers).status_code == 201
    with db.transaction(db.open(settings)) as session:
        task_id = tasks.get_task(session, "ents").id
        row = students.add(session, task_id=task_id, version="v1", path="fake/v1", metrics={"threshold": 0.8})
        students.set_promoted(session, row=row, promoted_flag=True)
    client.app.state.student_loader = lambda path: NamesTagger()  # type: ignore[attr-defined]
    response = client.post(
        "/v1/tasks/ents/predict", json={"texts": ["then Ann left", "Bob and Eve"]}, headers=client_headers
    )
    assert response.status_code == 200, response.text
    one, two = response.json()["predictions"]
    assert one == {
        "label": [{"start": 5, "end": 8, "label": "person"}],
        "confidence": 0.9,
        "probs": {},
        "above_threshold": True,
    }
    assert two["label"] == [{"start": 0, "end": 3, "label": "person"}, {"start": 8, "end": 11, "label": "person"}]
    assert two["above_threshold"] is False


def test_the_teacher_proposes_spans_that_reviewers_correct_and_a_sure_student_labels(
    client: TestClient,
    client_headers: dict[str, str],
    reviewer_headers: dict[str, str],
    fake_worker: WorkerContext,
    settings: Settings,
) -> None:
    assert client.post("/v1/tasks", json=TASK, headers=client_headers).status_code == 201
    name = client.get("/v1/review/me", headers=reviewer_headers).json()["name"]
    assert client.put(f"/v1/tasks/ents/reviewers/{name}", headers=ADMIN).status_code == 200
    raw = [
        {"id": "r1", "text": "then Ann met Bob"},
        {"id": "r2", "text": "nothing to see"},
        {"id": "r3", "text": "we saw Rome"},
    ]
    posted = client.post("/v1/tasks/ents/batches", json={"items": raw}, headers=client_headers)
    assert posted.status_code == 202, posted.text
    _drain_without_waiting(fake_worker)
    batch = client.get(posted.json()["url"], headers=client_headers).json()
    assert batch["done"] and batch["counts"]["review"] == 3, batch

    # Every proposal is reviewed, in random order (a uniform sample for the student's threshold), with the
    # teacher's spans shown to be corrected.
    answers: dict[str, list[dict[str, object]]] = {}
    leased = client.post("/v1/tasks/ents/review/next", headers=reviewer_headers).json()
    while leased is not None:
        assert leased["reasons"] == ["span_proposal"] and not leased["blind"] and leased["probs"] == {}
        assert "random order" in leased["priority_explanation"]
        text, external = leased["text"], leased["external_id"]
        resolve = f"/v1/tasks/ents/review/{leased['item_id']}/resolve?next=true"
        if external == "r2":  # the teacher found nothing: a low confidence
            assert leased["suggestion"] == [] and leased["confidence"] == pytest.approx(0.3)
            overlapping = [
                {"start": 0, "end": 7, "label": "person", "text": "nothing"},
                {"start": 3, "end": 9, "label": "person"},
            ]
            _problem(client.post(resolve, json={"label": overlapping}, headers=reviewer_headers), 422, "overlap")
            answers[external] = []
        else:
            assert leased["confidence"] == pytest.approx(0.9)
            assert len(leased["span_confidences"]) == len(leased["suggestion"]) > 0
            assert all(0 < p <= 1 for p in leased["span_confidences"])
            # The reviewer corrects it: Rome is a place; Ann and Bob stay people.
            answers[external] = [
                {
                    "start": s["start"],
                    "end": s["end"],
                    "label": "location" if text[s["start"] : s["end"]] == "Rome" else "person",
                }
                for s in leased["suggestion"]
            ]
        answered = client.post(resolve, json={"label": answers[external]}, headers=reviewer_headers)
        assert answered.status_code == 200 and answered.json()["status"] == "final", answered.text
        assert answered.json()["label"] == answers[external]
        leased = answered.json()["next_item"]
    assert answers["r3"] == [{"start": 7, "end": 11, "label": "location"}]
    assert answers["r1"] == [{"start": 5, "end": 8, "label": "person"}, {"start": 13, "end": 16, "label": "person"}]
    labels = _exported(client, client_headers)
    assert {key: labels[key] for key in answers} == answers
    agreement = client.get("/v1/tasks/ents/review/agreement", headers=reviewer_headers)
    assert agreement.status_code == 200, agreement.text

    # A promoted tagger with a certified threshold of 0.8 labels what it is sure of; the rest goes to the teacher.
    with db.transaction(db.open(settings)) as session:
        task_id = tasks.get_task(session, "ents").id
        row = students.add(session, task_id=task_id, version="v1", path="fake/v1", metrics={"threshold": 0.8})
        students.set_promoted(session, row=row, promoted_flag=True)
    fake_worker.student_loader = lambda path: NamesTagger()
    more = [{"id": "s1", "text": "then Eve left"}, {"id": "s2", "text": "Bob and Eve"}]
    posted = client.post("/v1/tasks/ents/batches", json={"items": more}, headers=client_headers)
    _drain_without_waiting(fake_worker)
    got = {
        row["item_id"]: row for row in client.get(posted.json()["labels_url"], headers=client_headers).json()["items"]
    }
    assert got["s1"]["label"] == [{"start": 5, "end": 8, "label": "person"}] and got["s1"]["source"] == "student"
    assert got["s2"]["state"] == "review"


def test_the_quality_report_and_the_dashboard_of_a_spans_task_follow_its_tagger(
    client: TestClient,
    client_headers: dict[str, str],
    reviewer_headers: dict[str, str],
    fake_worker: WorkerContext,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert client.post("/v1/tasks", json={**TASK, "audit_share": 0.5}, headers=client_headers).status_code == 201
    name = client.get("/v1/review/me", headers=reviewer_headers).json()["name"]
    assert client.put(f"/v1/tasks/ents/reviewers/{name}", headers=ADMIN).status_code == 200
    raw = [{"id": "r1", "text": "then Ann met Bob"}, {"id": "r2", "text": "nothing to see"}]
    client.post("/v1/tasks/ents/batches", json={"items": raw}, headers=client_headers)
    _drain_without_waiting(fake_worker)
    # The reviewer calls every proposed span a place (a substitution at the same offsets) and keeps the empty set.
    relabeled = 0
    while (leased := client.post("/v1/tasks/ents/review/next", headers=reviewer_headers)).status_code == 200:
        item = leased.json()
        answer = [{**span, "label": "location"} for span in item["suggestion"]]
        relabeled += sum(span["label"] != "location" for span in item["suggestion"])
        resolved = client.post(
            f"/v1/tasks/ents/review/{item['item_id']}/resolve", json={"label": answer}, headers=reviewer_headers
        )
        assert resolved.status_code == 200, resolved.text
    assert relabeled > 0

    # A tagger certified at 0.8 (bound 0.06 on 40 gold items); every other sure set it gives is audited, blind.
    with db.transaction(db.open(settings)) as session:
        task_id = tasks.get_task(session, "ents").id
        metrics = {"threshold": 0.8, "threshold_error_bound": 0.06, "threshold_certified_on": 40}
        row = students.add(session, task_id=task_id, version="v1", path="fake/v1", metrics=metrics)
        students.set_promoted(session, row=row, promoted_flag=True)
    fake_worker.student_loader = lambda path: NamesTagger()
    monkeypatch.setattr("service.jobs.span_scoring.audit_draw", lambda item_id: 0.0 if item_id % 2 else 0.99)
    sure = [{"id": f"s{i}", "text": f"then {who} left"} for i, who in enumerate(("Eve", "Ann", "Joe", "Kim"))]
    posted = client.post("/v1/tasks/ents/batches", json={"items": sure}, headers=client_headers)
    _drain_without_waiting(fake_worker)
    states = [row["state"] for row in client.get(posted.json()["labels_url"], headers=client_headers).json()["items"]]
    assert sorted(states) == ["accepted", "accepted", "review", "review"], states
    # The first audit finds the tagger right, the second wrong (the reviewer sees no suggestion on either).
    answers = iter([None, []])
    while (leased := client.post("/v1/tasks/ents/review/next", headers=reviewer_headers)).status_code == 200:
        item = leased.json()
        assert item["blind"] and item["reasons"] == ["audit_sample"] and item["suggestion"] is None, item
        given = next(answers)
        text = item["text"]
        answer = [{"start": 5, "end": text.index(" left"), "label": "person"}] if given is None else given
        resolved = client.post(
            f"/v1/tasks/ents/review/{item['item_id']}/resolve", json={"label": answer}, headers=reviewer_headers
        )
        assert resolved.status_code == 200, resolved.text

    quality = client.get("/v1/tasks/ents/quality", headers=client_headers).json()
    assert (quality["threshold"], quality["error_bound"], quality["certified_on"]) == (0.8, 0.06, 40)
    assert (quality["accepted"], quality["total"], quality["coverage"]) == (2, 6, pytest.approx(2 / 6))
    assert (quality["audit_reviews"], quality["audit_errors"], quality["human_reviews"]) == (2, 1, 4), quality
    assert quality["labeler"] is None and quality["looks"] == 0
    scraped = _samples(client.get("/metrics").text)
    assert scraped[("understudy_certified_error_bound", (("task", "ents"),))] == 0.06
    assert scraped[("understudy_coverage", (("task", "ents"),))] == pytest.approx(2 / 6)

    _login(client, "lead", settings)
    page = client.get("/ui/tasks/ents")
    assert page.status_code == 200 and 'id="confusion-panel"' in page.text, page.text
    for chart in ("timeline", "confusion", "accuracy"):
        assert "<svg" in client.get(f"/ui/tasks/ents/charts/{chart}.svg").text
    cells = {(c["human"], c["machine"]): c["items"] for c in client.get("/ui/tasks/ents/data/confusion.json").json()}
    assert set(cells) == {
        (h, m) for h in ("person", "location", "(no span)") for m in ("person", "location", "(no span)")
    }
    # The relabeled proposals, the kept empty set, the right audit and the wrong one (a person the human did not see).
    assert cells[("location", "person")] == relabeled and cells[("(no span)", "(no span)")] == 1
    assert cells[("person", "person")] == 1 and cells[("(no span)", "person")] == 1
    accuracy = {row["source"]: row for row in client.get("/ui/tasks/ents/data/accuracy.json").json()}
    assert (accuracy["student"]["items"], accuracy["student"]["correct"]) == (2, 1)
    assert set(accuracy) == {"teacher, raw", "student"}, "a spans teacher is neither calibrated nor stacked"
    assert (accuracy["teacher, raw"]["items"], accuracy["teacher, raw"]["correct"]) == (2, 1)


def test_what_a_tagger_is_unsure_of_goes_to_the_teacher_unless_the_teacher_lost_to_it_on_gold(
    client: TestClient, client_headers: dict[str, str], fake_worker: WorkerContext, settings: Settings
) -> None:
    assert client.post("/v1/tasks", json=TASK, headers=client_headers).status_code == 201
    fake_worker.student_loader = lambda path: NamesTagger()
    report = {"gate_metric": "micro_f1", "student": {"micro_f1": 0.4}, "teacher": {"micro_f1": 0.1}}
    seen: dict[str, dict[str, object]] = {}
    # The teacher lost on 5 gold items (too few to believe), then on 30: only then is it no longer asked.
    for version, answered, text in (("v1", 5, "Bob and Eve"), ("v2", 30, "Ann and Kim")):
        with db.transaction(db.open(settings)) as session:
            task_id = tasks.get_task(session, "ents").id
            metrics = {"threshold": 0.8, **report, "teacher_gold_examples": answered}
            row = students.add(session, task_id=task_id, version=version, path=f"fake/{version}", metrics=metrics)
            students.set_promoted(session, row=row, promoted_flag=True)
        posted = client.post(
            "/v1/tasks/ents/batches", json={"items": [{"id": version, "text": text}]}, headers=client_headers
        )
        _drain_without_waiting(fake_worker)
        seen[version] = client.get(posted.json()["labels_url"], headers=client_headers).json()["items"][0]
    assert seen["v1"]["model"] == fake_worker.teacher.model_name and seen["v1"]["reasons"] == ["below_threshold"]
    kept = seen["v2"]
    assert kept["state"] == "review" and kept["reasons"] == ["student_unsure"], kept
    assert str(kept["model"]).startswith("student:") and kept["prompt_version"] is None, "the teacher was not asked"


def test_a_file_of_posts_is_bulk_labeled_with_spans(
    client: TestClient, client_headers: dict[str, str], fake_worker: WorkerContext, settings: Settings, tmp_path: Path
) -> None:
    assert client.post("/v1/tasks", json=TASK, headers=client_headers).status_code == 201
    source = tmp_path / "posts.jsonl"
    source.write_text(_jsonl([{"id": "a", "text": "then Eve left"}, {"id": "b", "text": "Bob and Eve"}]).decode())
    common = {"task_name": "ents", "path": source, "text_field": "text", "id_field": "id", "progress": lambda _: None}

    # Without a student: every row gets the teacher's proposal, none accepted (nothing certifies the teacher's sets).
    counts = label_file(fake_worker, out=tmp_path / "teacher.jsonl", **common)  # type: ignore[arg-type]
    rows = [json.loads(line) for line in (tmp_path / "teacher.jsonl").read_text().splitlines()]
    assert counts["teacher"] == 2 and counts["review"] == 2
    assert rows[0]["label"] == [{"start": 5, "end": 8, "label": "person"}] and rows[0]["reasons"] == ["span_proposal"]
    assert rows[0]["confidence"] == pytest.approx(0.9) and rows[0]["prompt_version"]

    # With a tagger certified at 0.8: what it is sure of is accepted, the rest goes to the teacher.
    with db.transaction(db.open(settings)) as session:
        task_id = tasks.get_task(session, "ents").id
        row = students.add(session, task_id=task_id, version="v1", path="fake/v1", metrics={"threshold": 0.8})
        students.set_promoted(session, row=row, promoted_flag=True)
    fake_worker.student_loader = lambda path: NamesTagger()
    counts = label_file(fake_worker, out=tmp_path / "cascade.jsonl", **common)  # type: ignore[arg-type]
    first, second = (json.loads(line) for line in (tmp_path / "cascade.jsonl").read_text().splitlines())
    assert first["source"] == "student" and first["accepted"] and first["label"] == rows[0]["label"]
    assert second["source"] == "teacher" and second["reasons"] == ["below_threshold"] and not second["accepted"]
    assert counts == {"resumed_from": 0, "student": 1, "teacher": 1, "review": 1, "rows": 2}
    # Without the teacher: what the tagger is unsure of keeps its set, not accepted (student_unsure).
    fast = label_file(fake_worker, out=tmp_path / "fast.jsonl", escalate_to_teacher=False, **common)  # type: ignore[arg-type]
    unsure = [json.loads(line) for line in (tmp_path / "fast.jsonl").read_text().splitlines()][1]
    assert fast["teacher"] == 0 and unsure["source"] == "student" and unsure["reasons"] == ["student_unsure"]
    assert not unsure["accepted"] and unsure["label"] == [
        {"start": 0, "end": 3, "label": "person"},
        {"start": 8, "end": 11, "label": "person"},
    ]


def test_reviewers_who_draw_different_spans_are_settled_by_a_lead_on_the_page(
    client: TestClient, client_headers: dict[str, str], fake_worker: WorkerContext, settings: Settings
) -> None:
    assert client.post("/v1/tasks", json=TASK, headers=client_headers).status_code == 201
    both = [{"start": 0, "end": 3, "label": "person"}, {"start": 8, "end": 11, "label": "person"}]
    bad = {"id": "g0", "text": "Ann met Bob", "meta": {"gold_label": [{"start": 0, "end": 3, "label": "cat"}]}}
    refused = client.post("/v1/tasks/ents/batches", json={"items": [bad]}, headers=client_headers)
    _problem(refused, 422, "cat")
    assert refused.json()["field"] == "items.0.meta.gold_label"
    gold = {"id": "g1", "text": "Ann met Bob", "meta": {"gold_label": both}}
    assert client.post("/v1/tasks/ents/batches", json={"items": [gold]}, headers=client_headers).status_code == 202
    _drain_without_waiting(fake_worker)
    client.put("/v1/tasks/ents/review/settings", json={"gold_reviewers": 2}, headers=ADMIN)
    alice, bob = assigned_reviewer(client, settings, "ents"), assigned_reviewer(client, settings, "ents")
    for headers, answer in ((alice, both), (bob, both[:1])):
        leased = client.post("/v1/tasks/ents/review/next", headers=headers).json()
        assert leased["kind"] == "gold"
        done = client.post(
            f"/v1/tasks/ents/review/{leased['item_id']}/resolve", json={"label": answer}, headers=headers
        ).json()
    assert done["status"] == "adjudication", done

    agreement = client.get("/v1/tasks/ents/review/agreement", headers=alice).json()
    (pair,) = agreement["pairs"]
    assert pair["observed"] == 0.0 and pair["span_f1"] == pytest.approx(2 / 3)
    gold_accuracy = {row["reviewer"]: row["gold"]["accuracy"] for row in agreement["reviewers"]}
    assert sorted(gold_accuracy.values()) == [0.0, 1.0], "the gold span set is compared with the answers"

    lead = make_key(settings, "lead")["Authorization"][7:]
    client.post("/review/login", data={"key": lead})
    page = client.get("/ui/tasks/ents/adjudication").text
    assert "Ann → person, Bob → person" in page and "reviewers disagree" in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    values = [html.unescape(v) for v in re.findall(r'name="label" value="([^"]+)"', page)]
    assert json.dumps(both) in values and json.dumps(both[:1]) in values
    settled = client.post(
        f"/ui/tasks/ents/adjudication/{done['item_id']}", data={"csrf": csrf, "label": json.dumps(both)}
    )
    assert "final" in settled.text and "Nothing is waiting" in settled.text
    assert _exported(client, client_headers)["g1"] == both
