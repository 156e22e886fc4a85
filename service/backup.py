"""Backups: one tar.gz holding the database (SQLite's online backup API, or `pg_dump` in its custom format for
PostgreSQL), the trained students (the adapters folder) and a manifest; `restore` puts both back.

Both run while the service runs (SQLite's backup copies a consistent snapshot page by page; pg_dump reads one
snapshot). Restoring replaces the database's contents: it refuses a database that holds tasks unless forced, and
should be done with the service stopped. A backup from a newer schema than this code knows is refused.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from service import db
from service.config import Settings
from service.errors import Conflict, Invalid
from service.store import backup_data

MANIFEST = "manifest.json"
FORMAT = 1
SQLITE_FILE = "database.sqlite"
PG_FILE = "database.pgdump"
ADAPTERS = "adapters"


@dataclass(frozen=True)
class Manifest:
    format: int
    created_at: str
    database: str
    """sqlite | postgresql"""
    revision: str
    """The schema's Alembic revision."""
    adapters_dir: str
    contents: backup_data.Contents


def backup(settings: Settings, out: Path) -> Manifest:
    """Write a backup of the configured database and students to ``out`` (a .tar.gz)."""
    url = settings.resolved_database_url
    contents, revision = _held(url)
    adapters = settings.resolved_adapters_dir.resolve()
    manifest = Manifest(
        format=FORMAT,
        created_at=datetime.now(UTC).isoformat(),
        database=_kind(url),
        revision=revision,
        adapters_dir=str(adapters),
        contents=contents,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        dump = work / (SQLITE_FILE if manifest.database == "sqlite" else PG_FILE)
        if manifest.database == "sqlite":
            _sqlite_copy(_sqlite_path(url), dump)
        else:
            _run(["pg_dump", "--format=custom", "--no-owner", "--file", str(dump), _libpq(url)], "pg_dump")
        (work / MANIFEST).write_text(json.dumps(asdict(manifest), indent=2))
        partial = out.with_name(out.name + ".partial")
        with tarfile.open(partial, "w:gz") as archive:
            archive.add(work / MANIFEST, arcname=MANIFEST)
            archive.add(dump, arcname=dump.name)
            if adapters.is_dir():
                archive.add(adapters, arcname=ADAPTERS)
        partial.replace(out)  # a backup interrupted half-way never looks complete
    return manifest


def restore(settings: Settings, source: Path, *, force: bool) -> Manifest:
    """Replace the configured database's contents and students with the backup's."""
    url = settings.resolved_database_url
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        manifest = _unpack(source, work)
        if manifest.database != _kind(url):
            raise Invalid(
                f"{source} is a {manifest.database} backup; the configured database is {_kind(url)}", field="file"
            )
        held, known = _held(url)
        if manifest.revision not in _revisions():
            raise Conflict(f"{source} is from a newer schema ({manifest.revision}) than this Understudy ({known})")
        if held.tasks and not force:
            raise Conflict(
                f"the configured database holds {held.tasks} tasks and {held.items} items; restoring replaces them "
                "(pass --force)"
            )
        if manifest.database == "sqlite":
            _sqlite_copy(work / SQLITE_FILE, _sqlite_path(url))
        else:
            _run(
                ["pg_restore", "--clean", "--if-exists", "--no-owner", "--dbname", _libpq(url), str(work / PG_FILE)],
                "pg_restore",
            )
        adapters = settings.resolved_adapters_dir.resolve()
        if (work / ADAPTERS).is_dir():
            shutil.copytree(work / ADAPTERS, adapters, dirs_exist_ok=True)
    sessions = db.open_database(url)  # a backup of an older schema is brought up to date
    try:
        with db.transaction(sessions) as session:
            backup_data.move_students(session, Path(manifest.adapters_dir), adapters)
            restored = backup_data.contents(session)
    finally:
        db.engine_of(sessions).dispose()
    return Manifest(**{**asdict(manifest), "contents": restored})


def _held(url: str) -> tuple[backup_data.Contents, str]:
    """What the database at ``url`` holds, and its schema revision (brought to the latest first)."""
    sessions = db.open_database(url)
    try:
        with db.transaction(sessions) as session:
            return backup_data.contents(session), backup_data.revision(session)
    finally:
        db.engine_of(sessions).dispose()


def _unpack(source: Path, work: Path) -> Manifest:
    if not source.is_file():
        raise Invalid(f"no such file: {source}", field="file")
    try:
        with tarfile.open(source, "r:gz") as archive:
            archive.extractall(work, filter="data")
        raw: dict[str, Any] = json.loads((work / MANIFEST).read_text())
        manifest = Manifest(**{**raw, "contents": backup_data.Contents(**raw["contents"])})
    except (tarfile.TarError, OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise Invalid(f"{source} is not an Understudy backup ({type(exc).__name__}: {exc})", field="file") from exc
    if manifest.format != FORMAT:
        raise Invalid(f"{source} has backup format {manifest.format}; this Understudy reads {FORMAT}", field="file")
    return manifest


def _revisions() -> set[str]:
    config = Config()
    config.set_main_option("script_location", str(db.MIGRATIONS_DIR))
    return {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}


def _kind(url: str) -> str:
    backend = make_url(url).get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise Invalid(f"backups support SQLite and PostgreSQL, not {backend}", field="database_url")
    return backend


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise Invalid("an in-memory SQLite database cannot be backed up", field="database_url")
    return Path(database)


def _sqlite_copy(source: Path, target: Path) -> None:
    """SQLite's online backup: a consistent copy even while other connections write."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def _libpq(url: str) -> str:
    """The SQLAlchemy URL as pg_dump reads it (no +driver)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _run(command: list[str], tool: str) -> None:
    try:
        subprocess.run(command, check=True, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise Conflict(f"{tool} is not installed (PostgreSQL's client tools are needed for its backups)") from exc
    except subprocess.CalledProcessError as exc:
        last = (exc.stderr or "").strip().splitlines()[-1:] or [f"exit status {exc.returncode}"]
        raise Conflict(f"{tool} failed: {last[0]}") from exc
