"""The `understudy` command: serve, worker, demo, keys, label, train and bench. Errors print one line, exit 2."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer

from service.config import Settings, get_settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Understudy: LLM-assisted auto-labeling.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks on real data; write JSON, tables and plots.")
app.add_typer(bench_app, name="bench")


def fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(2)


def worker_context(settings: Settings) -> object:
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
    from service.jobs.context import WorkerContext
    from service.main import create_app

    settings = get_settings()
    api = create_app(settings)
    stop = threading.Event()
    if worker and settings.embedded_worker:
        ctx = worker_context(settings)
        assert isinstance(ctx, WorkerContext)
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
    from service.jobs.context import WorkerContext

    ctx = worker_context(get_settings())
    assert isinstance(ctx, WorkerContext)
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


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
