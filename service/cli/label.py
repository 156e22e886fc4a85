"""Labeling from the command line: the demo, creating a task, bulk labeling of a file, training a student, import
and export."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from service.cli.app import app, fail
from service.config import get_settings

if TYPE_CHECKING:
    from service.store.exports import FileFormat


@app.command()
def demo(
    items: Annotated[int, typer.Option(help="SMS Spam messages to label.")] = 600,
    holdout: Annotated[int, typer.Option(help="Gold messages kept aside to evaluate the student.")] = 400,
    cascade_items: Annotated[int, typer.Option(help="Messages labeled by the cascade after promotion.")] = 1000,
    seed: int = 0,
    json_out: Annotated[Path | None, typer.Option("--json")] = None,
) -> None:
    """The main job, end to end on SMS Spam: teacher, filter, simulated reviewer, student, cascade."""
    from service.demo import run_demo

    logging.basicConfig(level=logging.WARNING)
    run_demo(items=items, holdout=holdout, cascade_items=cascade_items, seed=seed, json_out=json_out)


@app.command("create-task")
def create_task(
    file: Annotated[
        Path, typer.Argument(help="The task as JSON, the body of POST /v1/tasks: name, kind, labels, instructions...")
    ],
) -> None:
    """Create a task from a JSON file, as POST /v1/tasks does (give "kind": "multi_label" for label sets)."""
    from pydantic import ValidationError

    from service import db
    from service.api.schemas.tasks import TaskCreate
    from service.errors import ServiceError
    from service.pipeline.render import check_template
    from service.store import tasks

    settings = get_settings()
    try:
        spec = TaskCreate.model_validate_json(file.read_bytes())
        check_template(spec.prompt_template, settings.prompts_dir)
        with db.transaction(db.open(settings)) as session:
            task = tasks.create_task(session, spec)
            summary = f"created task {task.name!r}: {task.kind}, {len(task.labels)} labels, project {task.project!r}"
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror or exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        raise fail(f"{file}: {problems}") from exc
    except (ServiceError, ValueError) as exc:
        raise fail(str(exc)) from exc
    typer.echo(summary)


@app.command()
def label(
    file: Annotated[Path, typer.Argument(help="A .jsonl, .csv or .parquet file of items.")],
    task: Annotated[str, typer.Option(help="The task whose labels, prompt, policy and student to use.")],
    out: Annotated[Path, typer.Option(help="Output JSONL; also the checkpoint a rerun resumes from.")],
    text_field: str = "text",
    id_field: Annotated[str | None, typer.Option(help="Field with the item id (default: the row number).")] = None,
    escalate: Annotated[
        str,
        typer.Option(help="Where rows the student is unsure of go: 'teacher', or 'review' (flagged, no teacher)."),
    ] = "teacher",
    engine: Annotated[str, typer.Option(help="'local' (this process) or 'ray' (Ray Data actors).")] = "local",
    address: Annotated[
        str | None, typer.Option(help="Ray cluster to join ('auto' for a running one); default: start one here.")
    ] = None,
    actors: Annotated[int, typer.Option(help="Labeling actors on Ray, one CPU each.", min=1)] = 2,
) -> None:
    """Bulk-label a file through the cascade: the promoted student first, the teacher for the unsure. Resumable."""
    from tqdm import tqdm

    from service.errors import ServiceError
    from service.formats import tabular
    from service.jobs.bulk_label import label_file
    from service.jobs.context import WorkerContext

    if not file.is_file():
        raise fail(f"no such file: {file}")
    if escalate not in ("teacher", "review"):
        raise fail(f"--escalate must be 'teacher' or 'review', not {escalate!r}")
    if engine not in ("local", "ray"):
        raise fail(f"--engine must be 'local' or 'ray', not {engine!r}")
    if engine == "local" and address is not None:
        raise fail("--address needs --engine ray")
    ctx = WorkerContext.from_settings(get_settings())
    try:
        total = tabular.count_rows(file)
        with tqdm(total=total, desc=f"labeling {file.name}", unit="row") as bar:
            counts = label_file(
                ctx,
                task_name=task,
                path=file,
                out=out,
                text_field=text_field,
                id_field=id_field,
                progress=lambda done: bar.update(done - bar.n),
                escalate_to_teacher=escalate == "teacher",
                engine="ray" if engine == "ray" else "local",
                actors=actors,
                address=address,
                rows_in_file=total,
            )
    except ServiceError as exc:
        raise fail(str(exc)) from exc
    typer.echo(json.dumps(counts))


@app.command()
def train(
    task: Annotated[str, typer.Option(help="The task whose accepted labels to distil.")],
    seed: int = 0,
    epochs: int = 10,
) -> None:
    """Train a LoRA student on the task's accepted labels, evaluate it on held-out human gold, register it."""
    from tqdm import tqdm

    from service.errors import ServiceError
    from service.jobs.context import WorkerContext
    from service.jobs.train_student import train_now

    ctx = WorkerContext.from_settings(get_settings())
    try:
        with tqdm(desc="training student", unit="step") as bar:

            def on_progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            result = train_now(ctx, task_name=task, seed=seed, epochs=epochs, on_progress=on_progress)
    except (ServiceError, ValueError) as exc:
        raise fail(str(exc)) from exc
    typer.echo(json.dumps({k: result[k] for k in ("version", "path", "train_examples", "gate_passed", "threshold")}))


def _file_format(fmt: str) -> FileFormat:
    formats: dict[str, FileFormat] = {
        "jsonl": "jsonl",
        "csv": "csv",
        "parquet": "parquet",
        "hf": "hf",
        "labelstudio": "labelstudio",
    }
    if fmt not in formats:
        raise fail(f"unknown format {fmt!r}; use {', '.join(formats)}")
    return formats[fmt]


@app.command("export-student")
def export_student(
    task: Annotated[str, typer.Option(help="The task whose student to export.")],
    out: Annotated[Path, typer.Option(help="Folder to write (created; must be empty).")],
    version: Annotated[str | None, typer.Option(help="Student version (default: the promoted one).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="hf (transformers) or onnx (onnxruntime)")] = "hf",
) -> None:
    """Export a student as a standard model folder with its model card; it runs without Understudy."""
    from service import db, student_export
    from service.errors import ServiceError
    from service.store import tasks

    if fmt not in student_export.FORMATS:
        raise fail(f"unknown format {fmt!r}; use {' or '.join(student_export.FORMATS)}")
    try:
        with db.transaction(db.open(get_settings())) as session:
            task_row = tasks.get_task(session, task)
            row = student_export.student_row(session, task_row, version)
            student_export.write_folder(session, task_row, row, fmt, out)
            summary = f"student {row.version} of {task} written to {out} ({fmt}); see {out / 'README.md'}"
    except (ServiceError, OSError) as exc:
        raise fail(str(exc)) from exc
    typer.echo(summary)


@app.command("export")
def export_labels(
    task: Annotated[str, typer.Option(help="The task whose final labels to export.")],
    out: Annotated[Path, typer.Option(help="Output file (a folder for --format hf).")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl, csv, parquet, hf or labelstudio")] = "jsonl",
    config_out: Annotated[
        Path | None, typer.Option(help="Also write the Label Studio labeling config (XML) for the task here.")
    ] = None,
) -> None:
    """Export final labels with provenance (source, confidence, model, prompt version, reviewer)."""
    from service import db
    from service.errors import ServiceError
    from service.store import exports, tasks

    file_format = _file_format(fmt)
    if config_out is not None and file_format != "labelstudio":
        raise fail("--config-out goes with --format labelstudio")
    try:
        with db.transaction(db.open(get_settings())) as session:
            task_row = tasks.get_task(session, task)
            rows = exports.export_file(session, task=task_row, fmt=file_format, path=out)
            if config_out is not None:
                config_out.write_text(exports.labelstudio_config(task_row))
    except (ServiceError, OSError) as exc:
        raise fail(str(exc)) from exc
    typer.echo(f"{rows} rows written to {out}" + (f", the labeling config to {config_out}" if config_out else ""))


@app.command("import")
def import_items(
    file: Annotated[Path, typer.Argument(help="Items (jsonl, csv, parquet, hf folder) or a Label Studio export.")],
    task: Annotated[str, typer.Option(help="The task the items belong to or join.")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl, csv, parquet, hf or labelstudio")] = "jsonl",
    reviewer: Annotated[
        str,
        typer.Option(help="Recorded as the importer of the labels, and as their reviewer where the file names none."),
    ] = "import",
    label_field: Annotated[
        str | None, typer.Option(help="A column holding human labels (jsonl, csv, parquet, hf); empty: no label.")
    ] = None,
) -> None:
    """Import items, with human labels from Label Studio annotations or a label column: a row whose id names an
    item of the task updates it, the others come in as a new batch to label."""
    from service import db
    from service.errors import ServiceError
    from service.store import exports, tasks

    if not file.exists():
        raise fail(f"no such file: {file}")
    file_format = _file_format(fmt)
    try:
        with db.transaction(db.open(get_settings())) as session:
            result = exports.import_file(
                session,
                task=tasks.get_task(session, task),
                fmt=file_format,
                path=file,
                importer=reviewer,
                label_field=label_field,
            )
            summary = (
                f"{result.matched} matched, {result.labeled} labeled, {result.added} added"
                + (f" (batch {result.batch.id})" if result.batch is not None else "")
                + f", {result.unchanged} unchanged"
            )
    except (ServiceError, OSError, ValueError) as exc:
        raise fail(str(exc)) from exc
    typer.echo(summary)
