"""API keys: stored as SHA-256 hashes; the plain key is shown once, at creation."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.errors import Conflict
from service.tables import ApiKey

ROLES = ("client", "reviewer", "admin")


def hash_key(plain: str) -> str:
    return hashlib.sha256(plain.encode()).hexdigest()


def create_key(session: Session, *, name: str, role: str, plain: str | None = None) -> tuple[ApiKey, str]:
    if session.scalar(select(ApiKey).where(ApiKey.name == name)) is not None:
        raise Conflict(f"an API key named {name!r} exists already", field="name")
    plain = plain or "us_" + secrets.token_urlsafe(32)
    key = ApiKey(name=name, role=role, key_hash=hash_key(plain))
    session.add(key)
    session.flush()
    return key, plain


def ensure_key(session: Session, *, name: str, role: str, plain: str) -> ApiKey:
    """The key with this value, created under `name` if it does not exist (start-up bootstrap)."""
    existing = find_key(session, plain)
    if existing is not None:
        return existing
    return create_key(session, name=name, role=role, plain=plain)[0]


def find_key(session: Session, plain: str) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(plain)))
