"""Running the service: the API server, workers, and API keys."""

from __future__ import annotations

import threading
from typing import Annotated

import typer

from service.cli.app import app, fail
from service.config import get_settings


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    worker: Annotated[bool, typer.Option(help="Run one in-process worker (the embedded default).")] = True,
) -> None:
    """Run the HTTP API (and, by default, one in-process worker); /metrics has both."""
    import uvicorn

    from service import logs
    from service.jobs import worker as worker_loop
    from service.jobs.context import WorkerContext
    from service.main import create_app

    settings = get_settings()
    logs.configure(settings.log_format)
    api = create_app(settings)
    stop = threading.Event()
    if worker and settings.embedded_worker:
        ctx = WorkerContext.from_settings(settings)
        threading.Thread(target=worker_loop.run, args=(ctx,), kwargs={"stop": stop}, daemon=True).start()
    try:
        # Access lines come from the app (with the request id and route), so uvicorn's own are off.
        uvicorn.run(api, host=host, port=port, log_config=None, access_log=False)
    finally:
        stop.set()


@app.command()
def worker(
    exit_when_idle: Annotated[bool, typer.Option(help="Stop when no job is left (batch runs, tests).")] = False,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve this worker's Prometheus counters on this port.", min=1, max=65535)
    ] = None,
) -> None:
    """Run a worker: claim jobs under a lease and run them until stopped."""
    from service import logs
    from service.jobs import metrics
    from service.jobs import worker as worker_loop
    from service.jobs.context import WorkerContext

    settings = get_settings()
    logs.configure(settings.log_format)
    if metrics_port is not None:
        try:
            metrics.serve(metrics_port)
        except OSError as exc:
            raise fail(f"cannot serve metrics on port {metrics_port}: {exc.strerror}") from exc
    ctx = WorkerContext.from_settings(settings)
    typer.echo(f"worker {ctx.worker_id} started")
    worker_loop.run(ctx, stop=threading.Event(), exit_when_idle=exit_when_idle)


@app.command("create-key")
def create_key(name: str, role: Annotated[str, typer.Option(help="client, reviewer or admin")] = "client") -> None:
    """Create an API key and print it (it is stored hashed and shown only now)."""
    from service import db
    from service.errors import ServiceError
    from service.store import keys

    if role not in keys.ROLES:
        raise fail(f"role must be one of {', '.join(keys.ROLES)}, not {role!r}")
    try:
        with db.transaction(db.open(get_settings())) as session:
            _, plain = keys.create_key(session, name=name, role=role)
    except ServiceError as exc:
        raise fail(exc.detail) from exc
    typer.echo(plain)
