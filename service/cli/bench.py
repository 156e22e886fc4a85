"""`understudy bench ...`: benchmarks on real data. Each command checks its options and calls service.bench."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from service.cli.app import bench_app, fail
from service.config import get_settings
from service.errors import ServiceError
from service.ports import TaskKind

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PostgresOpt = Annotated[str, typer.Option(help="Admin URL of a PostgreSQL to create scratch databases in.")]


@bench_app.command("review-load")
def bench_review_load(
    reviewers: int = 20,
    duration: Annotated[
        float,
        typer.Option(
            help="Seconds per run (30 s gives about 580 paused round trips, so the p99 rests on six samples)."
        ),
    ] = 30.0,
    postgres: PostgresOpt = DEFAULT_POSTGRES,
    out_dir: Path = Path("bench/results"),
) -> None:
    """Concurrent reviewers doing next + resolve against a running server: p50/p99 and items/s per store."""
    import tempfile

    from service.bench.review_load import review_load_table, run_suite, write_results

    with tempfile.TemporaryDirectory() as work:
        results = run_suite(work_dir=Path(work), postgres_admin_url=postgres, reviewers=reviewers, duration_s=duration)
    write_results(results, out_dir)
    typer.echo(review_load_table(results))


@bench_app.command("faults")
def bench_faults(
    items: Annotated[int, typer.Option(help="Items in the batch each fault hits.", min=100)] = 5000,
    scenario: Annotated[
        list[str] | None,
        typer.Option(help="worker_kill, postgres_restart, teacher_outage, sqlite_full (default: all; repeatable)."),
    ] = None,
    postgres: PostgresOpt = DEFAULT_POSTGRES,
    json_out: Annotated[Path | None, typer.Option("--json")] = None,
) -> None:
    """A batch labeled through a killed worker, a PostgreSQL restart, a teacher outage and a full disk: items lost,
    labeled twice, completion and the API's answers (restarts PostgreSQL and mounts a tmpfs: needs root)."""
    from service.bench.faults import SCENARIOS, run_faults

    chosen = scenario or list(SCENARIOS)
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown:
        raise fail(f"unknown scenario {unknown[0]!r}; choose from {', '.join(SCENARIOS)}")

    _print_in_scratch(
        lambda work: run_faults(items=items, scenarios=chosen, pg_admin_url=postgres, work=work, json_out=json_out)
    )


@bench_app.command("load")
def bench_load(
    clients: Annotated[int, typer.Option(min=1)] = 20,
    reviewers: Annotated[int, typer.Option(min=0)] = 20,
    duration: Annotated[float, typer.Option(help="Seconds of load.", min=1)] = 120.0,
    batch_items: Annotated[int, typer.Option(help="Items in each posted batch.", min=1)] = 1000,
    client_pause: Annotated[float, typer.Option(help="Seconds a client waits between batches.", min=0)] = 1.0,
    workers: Annotated[int, typer.Option(min=1)] = 1,
    postgres: PostgresOpt = DEFAULT_POSTGRES,
    json_out: Annotated[Path | None, typer.Option("--json")] = None,
) -> None:
    """Clients posting batches while reviewers work, on PostgreSQL: p50/p99 per route, errors, peak memory."""
    from service.bench.load import run_load

    _print_in_scratch(
        lambda work: run_load(
            clients=clients,
            reviewers=reviewers,
            duration_s=duration,
            batch_items=batch_items,
            client_pause_s=client_pause,
            workers=workers,
            pg_admin_url=postgres,
            work=work,
            json_out=json_out,
        )
    )


@bench_app.command("predict")
def bench_predict(
    task: Annotated[str, typer.Option(help="A task with a promoted student, in the configured database.")],
    data: Annotated[Path, typer.Option("--data", help="Texts to send (JSONL or CSV, or builtin:<name>).")],
    text_field: Annotated[str, typer.Option("--text-field")] = "text",
    label_field: Annotated[str, typer.Option("--label-field")] = "label",
    items: Annotated[int, typer.Option(help="Texts timed for items/s.", min=64)] = 1000,
    clients: Annotated[int, typer.Option(help="Concurrent clients, one text a request.", min=1)] = 20,
    duration: Annotated[float, typer.Option(help="Seconds of load.", min=1)] = 20.0,
    json_out: Annotated[Path | None, typer.Option("--json")] = None,
) -> None:
    """The promoted student online (POST /predict latency under concurrent clients, a uvicorn subprocess) and
    exported (items/s of the service's student, its ONNX and transformers exports, and how far they agree)."""
    from service.bench.predict import run_predict_bench
    from service.datasets import read_labeled

    _check_data(data)

    def run() -> Mapping[str, Any]:
        texts = [text for text, _ in read_labeled(data, text_field=text_field, label_field=label_field)][:items]
        return run_predict_bench(
            get_settings(), task=task, texts=texts, clients=clients, duration_s=duration, json_out=json_out
        )

    _print_table(run)


DataOpt = Annotated[Path, typer.Option("--data", help="JSONL or CSV (or builtin:sms_spam|trec|movie_reviews).")]
TextFieldOpt = Annotated[str, typer.Option("--text-field")]
LabelFieldOpt = Annotated[str, typer.Option("--label-field")]


def _print_table(run: Callable[[], Mapping[str, Any]]) -> None:
    """Run a benchmark and print its table; a bad file, field or option ends in one line."""

    try:
        result = run()
    except (ServiceError, ValueError, RuntimeError) as exc:
        raise fail(str(exc)) from exc
    typer.echo(result["table"])


def _print_in_scratch(run: Callable[[Path], Mapping[str, Any]], work_dir: Path | None = None) -> None:
    """Run a benchmark in a scratch folder and print its table: ``work_dir`` emptied first and kept afterwards (to
    look into), or a temporary folder removed afterwards."""
    import shutil
    import tempfile

    def inside() -> Mapping[str, Any]:
        if work_dir is not None:
            shutil.rmtree(work_dir, ignore_errors=True)
            return run(work_dir)
        with tempfile.TemporaryDirectory() as work:
            return run(Path(work))

    _print_table(inside)


def _shares(budgets: str) -> tuple[float, ...]:
    try:
        shares = tuple(float(part) / 100 for part in budgets.split(","))
    except ValueError as exc:
        raise fail(f"--budgets takes percents separated by commas, e.g. 5,10,20; not {budgets!r}") from exc
    if not shares or not all(0 < share <= 1 for share in shares):
        raise fail(f"each budget must be above 0% and at most 100%, not {budgets!r}")
    return shares


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
    budgets: Annotated[str, typer.Option(help="Review budgets, in percent of the items, comma-separated.")] = "5,10,20",
    target_coverage: Annotated[
        float | None, typer.Option(help="Stop cold start once a look certifying this coverage is out of reach.")
    ] = None,
    reviewer_noise: float = 0.0,
    seed: int = 0,
    seeds: int = 20,
    limit: Annotated[int, typer.Option(help="Items evaluated (a seeded subset).")] = 1000,
    pool: Annotated[int, typer.Option(help="Labeled items kept aside for the teacher's few-shot examples.")] = 200,
    template: Annotated[
        str | None,
        typer.Option(help="Prompt template under prompts/ (default classify/chatml, or multi_label/chatml)."),
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json")] = None,
    plot: Annotated[Path | None, typer.Option(help="PNG of final accuracy and coverage against the budget.")] = None,
    kind: Annotated[
        TaskKind,
        typer.Option(
            help="multi_label: each label is a list of labels (or a JSON string of one); spans: a list of "
            "{start, end, label} objects."
        ),
    ] = "single_label",
) -> None:
    """The certified labelers (stacked, teacher alone) against random review, a max-probability threshold and
    active learning without the LLM, at each review budget, over seeded runs (reviewer simulated from gold). A
    spans run (--kind spans --label-field spans) trains the service's span tagger per seed and reports its
    certified coverage beside the teacher alone and random review."""
    from service.bench.runs import quality_run, span_quality_run

    _check_data(data)
    common: dict[str, Any] = {
        "data": data,
        "text_field": text_field,
        "label_field": label_field,
        "epsilon": epsilon,
        "delta": delta,
        "budget_shares": _shares(budgets),
        "seed": seed,
        "seeds": seeds,
        "limit": limit,
        "pool": pool,
        "json_out": json_out,
    }
    if kind == "spans":
        if plot is not None or template is not None or target_coverage is not None or reviewer_noise:
            raise fail("--kind spans takes no --plot, --template, --target-coverage or --reviewer-noise")
        _print_table(lambda: span_quality_run(get_settings(), **common))
        return
    _print_table(
        lambda: quality_run(
            get_settings(),
            **common,
            target_coverage=target_coverage,
            reviewer_noise=reviewer_noise,
            template=template or ("multi_label/chatml" if kind == "multi_label" else "classify/chatml"),
            plot=plot,
            kind=kind,
        )
    )


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

    _check_data(data)
    _print_table(
        lambda: run_teacher_bench(
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
    )


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
    kind: Annotated[
        TaskKind,
        typer.Option(
            help="multi_label: each label is a list of labels; spans: a list of {start, end, label} objects (beside "
            "full fine-tuning of the encoder); both train on gold (--no-teacher)."
        ),
    ] = "single_label",
) -> None:
    """Student quality for several training sizes (learning curve), speed, memory and cost beside the teacher and
    logistic regression on MiniLM embeddings (spans: beside full fine-tuning)."""
    from service.bench.runs import student_run

    _check_data(data)
    if kind != "single_label" and teacher:
        raise fail(f"--kind {kind} trains the student on the file's gold labels: add --no-teacher")
    _print_table(
        lambda: student_run(
            get_settings(),
            data=data,
            text_field=text_field,
            label_field=label_field,
            seed=seed,
            with_teacher=teacher,
            test_size=test_size,
            pool=pool,
            audit=audit,
            candidates=candidates,
            epsilon=epsilon,
            delta=delta,
            json_out=json_out,
            plot=plot,
            kind=kind,
        )
    )


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
    from service.bench.bulk import run_bulk_bench

    _check_data(data)
    if escalate not in ("teacher", "review"):
        raise fail(f"--escalate must be 'teacher' or 'review', not {escalate!r}")
    if rows < 1 or kill_after <= 0:
        raise fail("--rows must be at least 1 and --kill-after positive")
    _print_in_scratch(
        lambda work: run_bulk_bench(
            data,
            text_field,
            label_field,
            work_dir=work,
            rows=rows,
            train_size=train_size,
            kill_after_s=kill_after,
            escalate=escalate,
            epsilon=epsilon,
            seed=seed,
            json_out=json_out,
        ),
        work_dir,
    )


@bench_app.command("engines")
def bench_engines(
    data: DataOpt,
    text_field: TextFieldOpt = "text",
    label_field: LabelFieldOpt = "label",
    rows: Annotated[int, typer.Option(help="Generated rows to label with each engine.")] = 1_000_000,
    actors: Annotated[int, typer.Option(help="Labeling actors for the Ray engine.", min=1)] = 2,
    train_size: Annotated[int, typer.Option(help="Human labels imported to train the student on.")] = 500,
    epsilon: float = 0.05,
    seed: int = 0,
    work_dir: Annotated[Path, typer.Option(help="Scratch folder: database, student, input and outputs.")] = Path(
        "data/bench-engines"
    ),
    json_out: Annotated[Path | None, typer.Option("--json")] = None,
) -> None:
    """One Parquet file of generated text labeled by the single-process engine and by Ray Data: rows/s, peak memory."""
    from service.bench.engines import run_engines_bench

    _check_data(data)
    if rows < 1:
        raise fail("--rows must be at least 1")
    _print_in_scratch(
        lambda work: run_engines_bench(
            data,
            text_field,
            label_field,
            work_dir=work,
            rows=rows,
            actors=actors,
            train_size=train_size,
            epsilon=epsilon,
            seed=seed,
            json_out=json_out,
        ),
        work_dir,
    )


@bench_app.command("scale")
def bench_scale(
    workers: Annotated[str, typer.Option(help="Worker counts to run, comma-separated.")] = "1,2,4",
    items: Annotated[int, typer.Option(help="Items in the timed batch.", min=1)] = 2000,
    job_items: Annotated[int, typer.Option(help="Items per chunk job.", min=1)] = 50,
    teacher_delay_ms: Annotated[float, typer.Option(help="The stand-in teacher's sleep per prompt.", min=0)] = 80.0,
    embed_ms: Annotated[
        float,
        typer.Option(help="The stand-in embedder's sleep per text (MiniLM's time on one core of this machine).", min=0),
    ] = 10.0,
    real_embedder: Annotated[
        bool, typer.Option(help="Embed with the real MiniLM: the workers then share this machine's cores.")
    ] = False,
    postgres: PostgresOpt = DEFAULT_POSTGRES,
    json_out: Annotated[Path | None, typer.Option("--json")] = None,
) -> None:
    """One batch labeled by 1, 2 and 4 worker processes sharing its chunk jobs on PostgreSQL, with a stand-in
    teacher that sleeps per prompt and a stand-in embedder that sleeps per text (each worker as if on CPUs of its
    own): items/s, speed-up, and items lost or labeled twice."""
    from service.bench.scale import run_scale

    try:
        counts = [int(part) for part in workers.split(",")]
    except ValueError as exc:
        raise fail(f"--workers takes counts separated by commas, e.g. 1,2,4; not {workers!r}") from exc
    if not counts or min(counts) < 1:
        raise fail(f"each worker count must be at least 1, not {workers!r}")

    _print_in_scratch(
        lambda work: run_scale(
            workers=counts,
            items=items,
            job_items=job_items,
            teacher_delay_ms=teacher_delay_ms,
            embed_ms=None if real_embedder else embed_ms,
            pg_admin_url=postgres,
            work=work,
            json_out=json_out,
        )
    )


@bench_app.command("reviewers")
def bench_reviewers(
    data: DataOpt,
    text_field: TextFieldOpt = "text",
    label_field: LabelFieldOpt = "label",
    accuracies: Annotated[
        str, typer.Option(help="The simulated reviewers' accuracies, comma-separated.")
    ] = "0.95,0.85,0.7",
    items: Annotated[int, typer.Option(help="Items answered (a seeded subset).", min=10)] = 2000,
    gold_share: Annotated[float, typer.Option(help="Share of the items that are gold.", min=0.0, max=0.5)] = 0.05,
    seeds: Annotated[int, typer.Option(min=1)] = 20,
    json_out: Annotated[Path | None, typer.Option("--json")] = None,
) -> None:
    """Simulated reviewers of known accuracy: the weighted aggregate (Dawid-Skene) against majority vote."""
    from service.bench.reviewers import run_reviewers_bench
    from service.datasets import read_labeled

    try:
        chosen = [float(part) for part in accuracies.split(",")]
    except ValueError as exc:
        raise fail(f"--accuracies takes numbers separated by commas, e.g. 0.95,0.85,0.7; not {accuracies!r}") from exc
    if len(chosen) < 2 or not all(0.0 < a <= 1.0 for a in chosen):
        raise fail(f"--accuracies needs two reviewers or more, each above 0 and at most 1, not {accuracies!r}")
    _check_data(data)
    _print_table(
        lambda: run_reviewers_bench(
            pairs=read_labeled(data, text_field=text_field, label_field=label_field),
            dataset=str(data),
            accuracies={f"reviewer_{a:.2f}": a for a in chosen},
            items=items,
            gold_share=gold_share,
            seeds=seeds,
            json_out=json_out,
        )
    )


@bench_app.command("dashboard")
def bench_dashboard(
    items: Annotated[int, typer.Option(help="Items in the seeded task.", min=100)] = 100_000,
    reviews: Annotated[int, typer.Option(help="Of those, items reviewed by humans.", min=10)] = 10_000,
    repeats: Annotated[int, typer.Option(help="Timed requests per page, plot and table.", min=1)] = 5,
    json_out: Annotated[Path | None, typer.Option("--json")] = None,
) -> None:
    """The lead's dashboard on a large SQLite task: time of the page, each plot and each data table."""
    from service.bench.dashboard import run_dashboard_bench

    if reviews > items:
        raise fail(f"--reviews ({reviews}) cannot exceed --items ({items})")
    _print_in_scratch(
        lambda work: run_dashboard_bench(items=items, reviews=reviews, repeats=repeats, work=work, json_out=json_out)
    )
