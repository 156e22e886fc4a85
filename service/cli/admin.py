"""Running the service: the API server, workers, and API keys."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from sqlalchemy.orm import Session

from service.cli.app import app, fail, keys_app
from service.config import get_settings
from service.tables import utcnow

if TYPE_CHECKING:
    from service.backup import Manifest


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
    from service.main import create_app, settle_heap

    settings = get_settings()
    logs.configure(settings.log_format)
    api = create_app(settings)
    stop = threading.Event()
    if worker and settings.embedded_worker:
        ctx = WorkerContext.from_settings(settings)
        threading.Thread(target=worker_loop.run, args=(ctx,), kwargs={"stop": stop}, daemon=True).start()
    settle_heap()
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
    from service.main import settle_heap

    settings = get_settings()
    logs.configure(settings.log_format)
    if metrics_port is not None:
        try:
            metrics.serve(metrics_port)
        except OSError as exc:
            raise fail(f"cannot serve metrics on port {metrics_port}: {exc.strerror}") from exc
    ctx = WorkerContext.from_settings(settings)
    typer.echo(f"worker {ctx.worker_id} started")
    settle_heap()
    worker_loop.run(ctx, stop=threading.Event(), exit_when_idle=exit_when_idle)


@app.command("create-key")
def create_key(
    name: str,
    role: Annotated[str, typer.Option(help="client, reviewer, lead or admin")] = "client",
    expires_in_days: Annotated[
        float | None, typer.Option(help="The key stops working after this many days.", min=0.0, max=36500)
    ] = None,
    project: Annotated[
        str | None, typer.Option(help="A client key's project: it sees and changes only that project's tasks.")
    ] = None,
) -> None:
    """Create an API key and print it (it is stored hashed and shown only now)."""
    from service.store import keys

    if role not in keys.ROLES:
        raise fail(f"role must be one of {', '.join(keys.ROLES)}, not {role!r}")
    expires_at = None if expires_in_days is None else utcnow() + timedelta(days=expires_in_days)
    with _session() as session:
        _, plain = keys.create_key(session, name=name, role=role, expires_at=expires_at, project=project)
    typer.echo(plain)


@keys_app.command("list")
def list_keys() -> None:
    """Every key: name, role, state, expiry, last use (never the secret)."""
    from service.store import keys

    now = utcnow()
    with _session() as session:
        rows = keys.list_keys(session)
        for key in rows:
            refused = keys.refusal(key, now)
            state = "active" if refused is None else ("revoked" if key.revoked_at else "expired")
            expires = key.expires_at
            last = key.last_used_at
            typer.echo(
                f"{key.name}\t{key.role}\t{key.project or '*'}\t{state}"
                f"\texpires {expires.isoformat() if expires else 'never'}"
                f"\tlast used {last.isoformat() if last else 'never'}"
            )


@keys_app.command("revoke")
def revoke_key(name: str) -> None:
    """Revoke a key now (API processes honour it within 10 s)."""
    from service.store import keys

    with _session() as session:
        keys.revoke(session, name)
    typer.echo(f"revoked {name}")


@keys_app.command("rotate")
def rotate_key(
    name: str,
    grace_s: Annotated[
        int, typer.Option(help="How long the current secret keeps working beside the new one.", min=0, max=2592000)
    ] = 3600,
) -> None:
    """Give a key a new secret and print it; the current one keeps working for the grace period."""
    from service.store import keys

    with _session() as session:
        _, plain = keys.rotate(session, name, grace=timedelta(seconds=grace_s))
    typer.echo(plain)


@contextmanager
def _session() -> Iterator[Session]:
    """A transaction on the configured database; a service error is the command's one-line failure."""
    from service import db
    from service.errors import ServiceError

    try:
        with db.transaction(db.open(get_settings())) as session:
            yield session
    except ServiceError as exc:
        raise fail(exc.detail) from exc


@app.command()
def backup(out: Annotated[Path, typer.Option(help="The backup file to write (.tar.gz).")]) -> None:
    """Back up the database and the trained students into one file (safe while the service runs)."""
    from service import backup as backups
    from service.errors import ServiceError

    try:
        manifest = backups.backup(get_settings(), out)
    except ServiceError as exc:
        raise fail(exc.detail) from exc
    except OSError as exc:
        raise fail(f"cannot write {out}: {exc.strerror or exc}") from exc
    typer.echo(f"backed up {_described(manifest)} to {out}")


@app.command()
def restore(
    file: Path,
    force: Annotated[bool, typer.Option(help="Replace a database that already holds tasks.")] = False,
) -> None:
    """Restore a backup into the configured database and adapters folder (stop the service first)."""
    from service import backup as backups
    from service.errors import ServiceError

    try:
        manifest = backups.restore(get_settings(), file, force=force)
    except ServiceError as exc:
        raise fail(exc.detail) from exc
    typer.echo(f"restored {_described(manifest)} from {file}")


def _described(manifest: Manifest) -> str:
    held = manifest.contents
    return (
        f"{held.tasks} tasks, {held.items} items, {held.labels} labels, {held.review_answers} review answers "
        f"and {held.students} students ({manifest.database}, schema {manifest.revision})"
    )
