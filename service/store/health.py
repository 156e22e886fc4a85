"""Whether the database answers."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session


def ping(session: Session) -> str:
    """Run a trivial query; returns the database's dialect name (sqlite, postgresql)."""
    session.execute(text("SELECT 1"))
    return session.get_bind().dialect.name
