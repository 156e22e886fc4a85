"""SQLAlchemy engine and sessions; migrations are applied with Alembic at start-up."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

from service.config import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
IDS_PER_QUERY = 1000
"""Ids bound in one IN (...) clause: SQLite allows a limited number of bound parameters per statement."""


T = TypeVar("T")


def json_loads(text: str | bytes) -> Any:
    """A JSON cell: orjson, several times faster on the thousands of cells one read may hold; the standard library
    where orjson refuses what json.dumps (the writer) may have written: NaN and Infinity."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def id_chunks(ids: Sequence[T], size: int = IDS_PER_QUERY) -> Iterator[Sequence[T]]:
    """``ids`` in slices of at most ``size``, one IN (...) query each."""
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Several processes (API, workers) share the file: wait for the write lock instead of failing.
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
    # pysqlite's implicit transactions would let two writers both read before either writes;
    # the driver is put in autocommit and every transaction starts with BEGIN IMMEDIATE (see make_engine).
    dbapi_connection.isolation_level = None


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Every transaction takes the write lock (BEGIN IMMEDIATE), so a second connection in the process adds no
        # concurrency, only a wait in SQLite's busy handler, which sleeps in steps of up to 100 ms and let 20
        # concurrent reviewers see p99 of 1.7 s. With one pooled connection, threads queue for it and are woken
        # the moment it is returned; the busy handler is left to waits on other processes.
        engine = create_engine(
            url,
            json_deserializer=json_loads,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=QueuePool,
            pool_size=1,
            max_overflow=0,
            pool_timeout=30,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    return create_engine(url, json_deserializer=json_loads, pool_size=10, max_overflow=20, pool_recycle=1800)


def migrate(engine: Engine) -> None:
    """Bring the schema to the latest Alembic revision (idempotent)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def open_database(url: str) -> sessionmaker[Session]:
    """Sessions on the database at ``url``, its schema migrated to the latest revision first."""
    engine = make_engine(url)
    migrate(engine)
    return session_factory(engine)


def open(settings: Settings) -> sessionmaker[Session]:
    """Sessions on the configured database (SQLite under the data directory unless a URL is set), migrated."""
    return open_database(settings.resolved_database_url)


def engine_of(sessions: sessionmaker[Session]) -> Engine:
    """The engine a session factory is bound to (to dispose of its connections)."""
    engine = sessions.kw["bind"]
    assert isinstance(engine, Engine)
    return engine


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as session, session.begin():
        yield session
