"""The CLI answers bad input with one line and a non-zero exit, never a stack trace."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli import app
from service.config import get_settings


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("UNDERSTUDY_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_create_key_and_bad_role(runner: CliRunner) -> None:
    made = runner.invoke(app, ["create-key", "alice", "--role", "reviewer"])
    assert made.exit_code == 0 and made.stdout.strip().startswith("us_")
    again = runner.invoke(app, ["create-key", "alice", "--role", "reviewer"])
    assert again.exit_code == 2 and "exists already" in again.output and "Traceback" not in again.output
    bad = runner.invoke(app, ["create-key", "bob", "--role", "boss"])
    assert bad.exit_code == 2 and "role must be one of" in bad.output


def test_label_missing_file_and_unknown_task(runner: CliRunner, tmp_path: Path) -> None:
    missing = runner.invoke(app, ["label", str(tmp_path / "nope.csv"), "--task", "t", "--out", str(tmp_path / "o")])
    assert missing.exit_code == 2 and "no such file" in missing.output
    items = tmp_path / "items.jsonl"
    items.write_text('{"text": "hi"}\n')
    unknown = runner.invoke(app, ["label", str(items), "--task", "nope", "--out", str(tmp_path / "o.jsonl")])
    assert unknown.exit_code == 2 and "no task named 'nope'" in unknown.output and "Traceback" not in unknown.output
    out = str(tmp_path / "o.jsonl")
    engine = runner.invoke(app, ["label", str(items), "--task", "t", "--out", out, "--engine", "spark"])
    assert engine.exit_code == 2 and "--engine must be 'local' or 'ray'" in engine.output
    address = runner.invoke(app, ["label", str(items), "--task", "t", "--out", out, "--address", "auto"])
    assert address.exit_code == 2 and "--address needs --engine ray" in address.output
    on_ray = runner.invoke(app, ["label", str(items), "--task", "nope", "--out", out, "--engine", "ray"])
    assert on_ray.exit_code == 2 and "no task named 'nope'" in on_ray.output, "checked before a cluster starts"


def test_export_and_import_refuse_bad_input(runner: CliRunner, tmp_path: Path) -> None:
    bad_format = runner.invoke(app, ["export", "--task", "t", "--out", str(tmp_path / "o"), "--format", "xml"])
    assert bad_format.exit_code == 2 and "unknown format 'xml'" in bad_format.output
    no_task = runner.invoke(app, ["export", "--task", "nope", "--out", str(tmp_path / "o.jsonl")])
    assert no_task.exit_code == 2 and "no task named 'nope'" in no_task.output
    missing = runner.invoke(app, ["import", str(tmp_path / "none.jsonl"), "--task", "t"])
    assert missing.exit_code == 2 and "no such file" in missing.output


def test_bench_quality_refuses_an_unknown_template(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNDERSTUDY_CACHE_DIR", str(tmp_path / "cache"))
    data = tmp_path / "data.jsonl"
    data.write_text("".join(f'{{"text": "message {i}", "label": "{"ab"[i % 2]}"}}\n' for i in range(20)))
    result = runner.invoke(app, ["bench", "quality", "--data", str(data), "--pool", "4", "--template", "classify/nope"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "no prompt template 'classify/nope'" in result.output and "classify/chatml" in result.output


def test_import_takes_a_label_column_and_refuses_a_bad_label_in_one_line(runner: CliRunner, tmp_path: Path) -> None:
    from service import db
    from service.api.schemas.tasks import TaskCreate
    from service.store import tasks

    with db.transaction(db.open(get_settings())) as session:
        tasks.create_task(session, TaskCreate.model_validate({"name": "t", "labels": [{"name": "a"}, {"name": "b"}]}))
    good = tmp_path / "good.csv"
    good.write_text("text,y\nfirst,a\nsecond,\nthird,b\n")
    done = runner.invoke(app, ["import", str(good), "--task", "t", "--format", "csv", "--label-field", "y"])
    assert done.exit_code == 0 and "0 matched, 2 labeled, 3 added (batch 1), 0 unchanged" in done.output, done.output
    again = runner.invoke(app, ["import", str(good), "--task", "t", "--format", "csv", "--label-field", "y"])
    assert (
        again.exit_code == 0
        and "0 matched" not in again.output
        and "3 matched, 0 labeled, 0 added, 3 unchanged" in again.output
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("text,y\nfirst,a\nsecond,c\n")
    refused = runner.invoke(app, ["import", str(bad), "--task", "t", "--format", "csv", "--label-field", "y"])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert "not labels of the task (a, b) in rows 1" in refused.output and len(refused.output.strip().splitlines()) == 1


def test_export_student_refuses_bad_input_in_one_line(runner: CliRunner, tmp_path: Path) -> None:
    from service import db
    from service.api.schemas.tasks import TaskCreate
    from service.store import tasks

    with db.transaction(db.open(get_settings())) as session:
        tasks.create_task(session, TaskCreate.model_validate({"name": "t", "labels": [{"name": "a"}, {"name": "b"}]}))
    out = str(tmp_path / "model")
    bad = runner.invoke(app, ["export-student", "--task", "t", "--out", out, "--format", "pickle"])
    assert bad.exit_code == 2 and "unknown format 'pickle'; use hf or onnx" in bad.output
    none = runner.invoke(app, ["export-student", "--task", "t", "--out", out])
    assert none.exit_code == 2 and "no promoted student: name a version" in none.output
    missing = runner.invoke(app, ["export-student", "--task", "t", "--out", out, "--version", "v3"])
    assert missing.exit_code == 2 and "has no student 'v3'" in missing.output and "Traceback" not in missing.output


def test_bench_teacher_says_how_many_rows_it_needs(runner: CliRunner, tmp_path: Path) -> None:
    small = tmp_path / "small.jsonl"
    small.write_text("".join(f'{{"text": "t{i}", "label": "{"ab"[i % 2]}"}}\n' for i in range(30)))
    result = runner.invoke(app, ["bench", "teacher", "--data", str(small), "--no-throughput"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "has 30 labeled rows" in result.output and "needs at least 202" in result.output


def test_create_task_from_a_json_file_in_one_line(runner: CliRunner, tmp_path: Path) -> None:
    """Both kinds are created from the body POST /v1/tasks takes; a bad file is one line, naming what is wrong."""
    spec = tmp_path / "emotions.json"
    spec.write_text(
        '{"name": "emotions", "kind": "multi_label", "labels": [{"name": "anger"}, {"name": "joy"}],'
        ' "instructions": "Which emotions?"}'
    )
    made = runner.invoke(app, ["create-task", str(spec)])
    assert made.exit_code == 0, made.output
    assert "created task 'emotions': multi_label, 2 labels" in made.output
    again = runner.invoke(app, ["create-task", str(spec)])
    assert again.exit_code == 2 and "exists" in again.output and "Traceback" not in again.output
    single = tmp_path / "sms.json"
    single.write_text('{"name": "sms", "labels": [{"name": "ham"}, {"name": "spam"}]}')
    assert "single_label, 2 labels" in runner.invoke(app, ["create-task", str(single)]).output
    wrong = tmp_path / "wrong.json"
    wrong.write_text(
        '{"name": "w", "kind": "multi_label", "template": "classify/chatml", "labels": [{"name": "a"}, {"name": "b"}]}'
    )
    refused = runner.invoke(app, ["create-task", str(wrong)])
    assert refused.exit_code == 2 and "multi_label/" in refused.output, refused.output
    assert len(refused.output.strip().splitlines()) == 1
    for bad in ("{not json", '{"name": "x", "labels": []}'):
        wrong.write_text(bad)
        answer = runner.invoke(app, ["create-task", str(wrong)])
        assert answer.exit_code == 2 and "Traceback" not in answer.output and str(wrong) in answer.output
    missing = runner.invoke(app, ["create-task", str(tmp_path / "none.json")])
    assert missing.exit_code == 2 and "cannot read" in missing.output


def test_a_spans_task_takes_span_files_and_names_a_bad_row_in_one_line(runner: CliRunner, tmp_path: Path) -> None:
    spec = tmp_path / "ents.json"
    spec.write_text('{"name": "ents", "kind": "spans", "labels": [{"name": "person"}]}')
    made = runner.invoke(app, ["create-task", str(spec)])
    assert made.exit_code == 0 and "spans, 1 labels" in made.output, made.output
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        '{"id": "a", "text": "Ann left", "spans": [{"start": 0, "end": 3, "label": "person"}]}\n'
        '{"id": "b", "text": "Bo", "spans": [{"start": 0, "end": 5, "label": "person"}]}\n'
    )
    refused = runner.invoke(app, ["import", str(rows), "--task", "ents", "--label-field", "spans"])
    assert refused.exit_code == 2 and "rows 1" in refused.output and "outside the text" in refused.output
    assert len(refused.output.strip().splitlines()) == 1 and "Traceback" not in refused.output
    rows.write_text(rows.read_text().splitlines()[0] + "\n")
    imported = runner.invoke(app, ["import", str(rows), "--task", "ents", "--label-field", "spans"])
    assert imported.exit_code == 0, imported.output
    bench = ["bench", "quality", "--kind", "spans", "--data", str(rows), "--label-field", "spans"]
    for extra in (["--plot", str(tmp_path / "p.png")], ["--template", "spans/chatml"], ["--reviewer-noise", "0.1"]):
        wrong = runner.invoke(app, [*bench, *extra])
        assert wrong.exit_code == 2 and "--kind spans takes no" in wrong.output, wrong.output
