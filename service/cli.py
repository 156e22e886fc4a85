"""The `understudy` command: serve, worker, demo, keys, label, train and bench. Errors print one line, exit 2."""

from __future__ import annotations

import json
import logging
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from service.config import Settings, get_settings

if TYPE_CHECKING:
    from service.jobs.context import WorkerContext
    from service.store.exports import FileFormat

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Understudy: LLM-assisted auto-labeling.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks on real data; write JSON, tables and plots.")
app.add_typer(bench_app, name="bench")


def fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(2)


def worker_context(settings: Settings) -> WorkerContext:
    from service.backends.factory import load_student, make_embedder, make_teacher
    from service.db import make_engine, migrate, session_factory
    from service.jobs.context import WorkerContext

    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    return WorkerContext(
        settings=settings,
        sessions=session_factory(engine),
        teacher_factory=lambda: make_teacher(settings),
        embedder_factory=lambda: make_embedder(settings),
        student_loader=lambda path: load_student(settings, path),
    )


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    worker: Annotated[bool, typer.Option(help="Run one in-process worker (the embedded default).")] = True,
) -> None:
    """Run the HTTP API (and, by default, one in-process worker)."""
    import uvicorn

    from service.jobs import worker as worker_loop
    from service.main import create_app

    settings = get_settings()
    api = create_app(settings)
    stop = threading.Event()
    if worker and settings.embedded_worker:
        ctx = worker_context(settings)
        threading.Thread(target=worker_loop.run, args=(ctx,), kwargs={"stop": stop}, daemon=True).start()
    try:
        uvicorn.run(api, host=host, port=port, log_level="info")
    finally:
        stop.set()


@app.command()
def worker(
    exit_when_idle: Annotated[bool, typer.Option(help="Stop when no job is left (batch runs, tests).")] = False,
) -> None:
    """Run a worker: claim jobs under a lease and run them until stopped."""
    from service.jobs import worker as worker_loop

    ctx = worker_context(get_settings())
    typer.echo(f"worker {ctx.worker_id} started")
    worker_loop.run(ctx, stop=threading.Event(), exit_when_idle=exit_when_idle)


@app.command("create-key")
def create_key(name: str, role: Annotated[str, typer.Option(help="client, reviewer or admin")] = "client") -> None:
    """Create an API key and print it (it is stored hashed and shown only now)."""
    from service.db import make_engine, migrate, session_factory, transaction
    from service.errors import ServiceError
    from service.store import keys

    if role not in keys.ROLES:
        raise fail(f"role must be one of {', '.join(keys.ROLES)}, not {role!r}")
    engine = make_engine(get_settings().resolved_database_url)
    migrate(engine)
    try:
        with transaction(session_factory(engine)) as session:
            _, plain = keys.create_key(session, name=name, role=role)
    except ServiceError as exc:
        raise fail(exc.detail) from exc
    typer.echo(plain)


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
) -> None:
    """Bulk-label a file through the cascade: the promoted student first, the teacher for the unsure. Resumable."""
    from tqdm import tqdm

    from service.datasets import DataError, iter_records
    from service.errors import ServiceError
    from service.jobs.bulk_label import label_file

    if not file.is_file():
        raise fail(f"no such file: {file}")
    if escalate not in ("teacher", "review"):
        raise fail(f"--escalate must be 'teacher' or 'review', not {escalate!r}")
    ctx = worker_context(get_settings())
    try:
        total = sum(1 for _ in iter_records(file))
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
            )
    except (DataError, ServiceError) as exc:
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
    from service.jobs.train_student import train_now

    ctx = worker_context(get_settings())
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


@app.command("export")
def export_labels(
    task: Annotated[str, typer.Option(help="The task whose final labels to export.")],
    out: Annotated[Path, typer.Option(help="Output file (a folder for --format hf).")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl, csv, parquet, hf or labelstudio")] = "jsonl",
) -> None:
    """Export final labels with provenance (source, confidence, model, prompt version, reviewer)."""
    from service.db import make_engine, migrate, session_factory, transaction
    from service.errors import ServiceError
    from service.store import exports, tasks

    file_format = _file_format(fmt)
    engine = make_engine(get_settings().resolved_database_url)
    migrate(engine)
    try:
        with transaction(session_factory(engine)) as session:
            rows = exports.export_file(session, task=tasks.get_task(session, task), fmt=file_format, path=out)
    except (ServiceError, OSError) as exc:
        raise fail(str(exc)) from exc
    typer.echo(f"{rows} rows written to {out}")


@app.command("import")
def import_items(
    file: Annotated[Path, typer.Argument(help="Items (jsonl, csv, parquet, hf folder) or a Label Studio export.")],
    task: Annotated[str, typer.Option(help="The task to add the items to, as one batch.")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl, csv, parquet, hf or labelstudio")] = "jsonl",
    reviewer: Annotated[str, typer.Option(help="Who Label Studio annotations are recorded as.")] = "import",
) -> None:
    """Import raw items (and, from Label Studio, their annotations as human labels) as a batch to label."""
    from service.db import make_engine, migrate, session_factory, transaction
    from service.errors import ServiceError
    from service.store import exports, tasks

    if not file.exists():
        raise fail(f"no such file: {file}")
    file_format = _file_format(fmt)
    engine = make_engine(get_settings().resolved_database_url)
    migrate(engine)
    try:
        with transaction(session_factory(engine)) as session:
            batch, _, labeled = exports.import_file(
                session,
                task=tasks.get_task(session, task),
                fmt=file_format,
                path=file,
                reviewer=reviewer,
            )
            summary = f"batch {batch.id}: {batch.item_count} items, {labeled} with human labels"
    except (ServiceError, OSError, ValueError) as exc:
        raise fail(str(exc)) from exc
    typer.echo(summary)


@bench_app.command("review-load")
def bench_review_load(
    reviewers: int = 20,
    duration: Annotated[
        float,
        typer.Option(
            help="Seconds per run (30 s gives about 580 paused round trips, so the p99 rests on six samples)."
        ),
    ] = 30.0,
    postgres: Annotated[str | None, typer.Option(help="Admin URL of a PostgreSQL to create scratch DBs in.")] = (
        "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    ),
    out_dir: Path = Path("bench/results"),
) -> None:
    """Concurrent reviewers doing next + resolve against a running server: p50/p99 and items/s per store."""
    import tempfile

    from service.bench.review_load import review_load_table, run_suite, write_results

    with tempfile.TemporaryDirectory() as work:
        results = run_suite(work_dir=Path(work), postgres_admin_url=postgres, reviewers=reviewers, duration_s=duration)
    write_results(results, out_dir)
    typer.echo(review_load_table(results))


DataOpt = Annotated[Path, typer.Option("--data", help="JSONL or CSV (or builtin:sms_spam|trec|movie_reviews).")]
TextFieldOpt = Annotated[str, typer.Option("--text-field")]
LabelFieldOpt = Annotated[str, typer.Option("--label-field")]


def _check_data(data: Path) -> None:
    if not str(data).startswith("builtin:") and not data.is_file():
        raise fail(f"no such file: {data}")


@bench_app.command("quality")
def bench_quality(
    data: DataOpt,
    text_field: TextFieldOpt = "text",
    label_field: LabelFieldOpt = "label",
    epsilon: float = 0.05,
    delta: float = 0.1,
    review_budget: Annotated[int | None, typer.Option(help="Human reviews allowed (default: 10% of items).")] = None,
    reviewer_noise: float = 0.0,
    seed: int = 0,
    seeds: int = 20,
    limit: Annotated[int, typer.Option(help="Items evaluated (a seeded subset).")] = 1000,
    pool: Annotated[int, typer.Option(help="Labeled items kept aside for the teacher's few-shot examples.")] = 200,
    template: Annotated[
        str, typer.Option(help="Prompt template under prompts/ (classify/plain for base models).")
    ] = "classify/chatml",
    json_out: Annotated[Path | None, typer.Option("--json")] = None,
    plot: Annotated[Path | None, typer.Option(help="PNG of final accuracy against reviews spent.")] = None,
) -> None:
    """The confidence filter on real data, with the baselines, over seeded runs (reviewer simulated from gold)."""
    from service.backends.factory import make_embedder, make_teacher
    from service.bench.knn_teacher import knn_pool_scores, knn_teacher_scores, split_pool
    from service.bench.quality import run_quality_bench
    from service.datasets import DataError
    from service.pipeline.render import check_template

    _check_data(data)
    settings = get_settings()
    try:
        pool_pairs, rest = split_pool(
            data,
            text_field=text_field,
            label_field=label_field,
            pool_size=pool,
            seed=seed,
            out_dir=settings.cache_dir / "bench-data",
        )
        check_template(template, settings.prompts_dir)
        embedder, teacher = make_embedder(settings), make_teacher(settings)
        scores = knn_teacher_scores(teacher, embedder, pool=pool_pairs, settings=settings, template=template)
        pool_scores = knn_pool_scores(teacher, embedder, pool=pool_pairs, settings=settings, template=template)
        result = run_quality_bench(
            rest,
            "text",
            "label",
            teacher_scores=scores,
            review_budget=review_budget or max(limit // 10, 50),
            epsilon=epsilon,
            delta=delta,
            reviewer_noise=reviewer_noise,
            seed=seed,
            seeds=seeds,
            embed=embedder.embed,
            labeled=pool_pairs,
            labeled_scores=pool_scores,
            limit=limit,
            name=str(data),
            json_out=json_out,
            plot_out=plot,
        )
    except (DataError, ValueError) as exc:
        raise fail(str(exc)) from exc
    typer.echo(result["table"])


@bench_app.command("teacher")
def bench_teacher(
    data: DataOpt,
    text_field: TextFieldOpt = "text",
    label_field: LabelFieldOpt = "label",
    limit: int = 300,
    seed: int = 0,
    vllm_url: Annotated[str | None, typer.Option(help="A running vLLM server (default: start the cached one).")] = None,
    throughput: bool = True,
    json_out: Annotated[Path | None, typer.Option("--json")] = None,
) -> None:
    """Teacher quality (zero-shot, calibrated, kNN few-shot) and batched vs naive scoring speed on vLLM."""
    from service.bench.teacher import run_teacher_bench
    from service.datasets import DataError

    _check_data(data)
    try:
        result = run_teacher_bench(
            data,
            text_field,
            label_field,
            limit=limit,
            seed=seed,
            json_out=json_out,
            vllm_url=vllm_url,
            throughput=throughput,
            cache_dir=get_settings().cache_dir,
        )
    except (DataError, ValueError) as exc:
        raise fail(str(exc)) from exc
    typer.echo(result["table"])


@bench_app.command("student")
def bench_student(
    data: DataOpt,
    text_field: TextFieldOpt = "text",
    label_field: LabelFieldOpt = "label",
    seed: int = 0,
    teacher: Annotated[
        bool, typer.Option(help="Train on what a labeling run with the real teacher accepts, and score the teacher.")
    ] = True,
    test_size: Annotated[int, typer.Option(help="Held-out items both models are scored on.")] = 500,
    pool: Annotated[int, typer.Option(help="Reviewed items: the teacher's few-shot pool.")] = 200,
    audit: Annotated[int, typer.Option(help="Reviewed uniform sample that certifies the threshold.")] = 100,
    candidates: Annotated[int, typer.Option(help="Items the teacher labels for the filter to accept.")] = 800,
    epsilon: float = 0.05,
    delta: float = 0.1,
    json_out: Annotated[Path | None, typer.Option("--json")] = None,
    plot: Annotated[Path | None, typer.Option(help="PNG learning curve.")] = None,
) -> None:
    """Student quality for several training sizes (learning curve), speed, memory and cost beside the teacher."""
    from service.bench.student import run_student_bench
    from service.bench.student_accepted import AcceptedLabels, accepted_labels, split_held_out
    from service.datasets import DataError, read_labeled

    _check_data(data)
    try:
        accepted: AcceptedLabels | None = None
        if teacher:
            from service.backends.factory import make_embedder, make_teacher
            from service.bench.knn_teacher import knn_teacher_scores

            settings = get_settings()
            pairs = read_labeled(data, text_field=text_field, label_field=label_field)
            held_out, rest = split_held_out(pairs, test_size=test_size, seed=seed)
            reviewed, to_audit = rest[:pool], rest[pool : pool + audit]
            model, embedder = make_teacher(settings), make_embedder(settings)
            accepted = accepted_labels(
                pool=reviewed,
                audit=to_audit,
                machine=rest[pool + audit : pool + audit + candidates],
                held_out=held_out,
                label_names=tuple(sorted({label for _, label in pairs})),
                scores=knn_teacher_scores(model, embedder, pool=reviewed, settings=settings),
                uncached_scores=knn_teacher_scores(model, embedder, pool=reviewed, settings=settings, cache=False),
                epsilon=epsilon,
                delta=delta,
            )
        result = run_student_bench(
            data,
            text_field,
            label_field,
            seed=seed,
            test_size=test_size,
            accepted=accepted,
            json_out=json_out,
            plot_out=plot,
        )
    except (DataError, ValueError) as exc:
        raise fail(str(exc)) from exc
    typer.echo(result["table"])


@bench_app.command("bulk")
def bench_bulk(
    data: DataOpt,
    text_field: TextFieldOpt = "text",
    label_field: LabelFieldOpt = "label",
    rows: Annotated[int, typer.Option(help="Rows in the file to label (held-out texts, repeated).")] = 100_000,
    train_size: Annotated[int, typer.Option(help="Human labels imported to train the student on.")] = 500,
    kill_after: Annotated[float, typer.Option(help="Seconds before the first label run is SIGKILLed.")] = 60.0,
    escalate: Annotated[str, typer.Option(help="'review' (student only) or 'teacher'.")] = "review",
    epsilon: float = 0.05,
    seed: int = 0,
    work_dir: Annotated[Path, typer.Option(help="Scratch folder: database, student, input and output.")] = Path(
        "data/bench-bulk"
    ),
    json_out: Annotated[Path | None, typer.Option("--json")] = None,
) -> None:
    """Bulk labeling from the CLI on a large file: killed midway, resumed, output checked and scored on gold."""
    import shutil

    from service.bench.bulk import run_bulk_bench
    from service.datasets import DataError

    _check_data(data)
    if escalate not in ("teacher", "review"):
        raise fail(f"--escalate must be 'teacher' or 'review', not {escalate!r}")
    if rows < 1 or kill_after <= 0:
        raise fail("--rows must be at least 1 and --kill-after positive")
    shutil.rmtree(work_dir, ignore_errors=True)
    try:
        result = run_bulk_bench(
            data,
            text_field,
            label_field,
            work_dir=work_dir,
            rows=rows,
            train_size=train_size,
            kill_after_s=kill_after,
            escalate=escalate,
            epsilon=epsilon,
            seed=seed,
            json_out=json_out,
        )
    except (DataError, ValueError, RuntimeError) as exc:
        raise fail(str(exc)) from exc
    typer.echo(result["table"])


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
