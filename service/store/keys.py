"""API keys: stored as SHA-256 hashes; the plain key is shown once, at creation or rotation. A key may expire, be
revoked, or be rotated: a new secret for the same name and role, the previous one still valid for a grace period."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from service.errors import Conflict, Invalid, NotFound
from service.tables import ApiKey, utcnow

ROLES = ("client", "reviewer", "lead", "admin")
SEES_EVERY_TASK = ("lead", "admin")
"""Roles that review, and see the dashboard of, every task without being assigned to it. A lead also adjudicates;
only an admin manages keys, tasks and assignments."""
TOUCH_EVERY = timedelta(minutes=1)
"""Last use is written at most this often per key, so authentication does not write on every request."""


def hash_key(plain: str) -> str:
    return hashlib.sha256(plain.encode()).hexdigest()


def new_secret() -> str:
    return "us_" + secrets.token_urlsafe(32)


def create_key(
    session: Session,
    *,
    name: str,
    role: str,
    plain: str | None = None,
    expires_at: datetime | None = None,
    project: str | None = None,
) -> tuple[ApiKey, str]:
    if session.scalar(select(ApiKey).where(ApiKey.name == name)) is not None:
        raise Conflict(f"an API key named {name!r} exists already", field="name")
    if project is not None and role != "client":
        raise Invalid(
            "only a client key belongs to a project (reviewers see the tasks assigned to them)", field="project"
        )
    if expires_at is not None and expires_at <= utcnow():
        raise Invalid("expires_at is in the past", field="expires_at")
    plain = plain or new_secret()
    key = ApiKey(
        name=name, role=role, key_hash=hash_key(plain), expires_at=expires_at, created_at=utcnow(), project=project
    )
    session.add(key)
    session.flush()
    return key, plain


def ensure_key(session: Session, *, name: str, role: str, plain: str) -> ApiKey:
    """The start-up admin key: the key with this value if there is one; else the key named ``name`` takes this
    value (the environment's key was changed between starts: the old value stops working), or is created."""
    digest = hash_key(plain)
    existing = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
    if existing is not None:
        return existing
    named = session.scalar(select(ApiKey).where(ApiKey.name == name))
    if named is None:
        return create_key(session, name=name, role=role, plain=plain)[0]
    named.key_hash, named.role, named.revoked_at, named.expires_at = digest, role, None, None
    named.previous_hash = named.previous_valid_until = None
    return named


@dataclass(frozen=True)
class Refusal:
    """Why a presented key does not authenticate."""

    detail: str


def find_key(session: Session, plain: str, *, now: datetime | None = None) -> ApiKey | Refusal:
    """The live key whose secret (or previous secret, within its grace period) is ``plain``; else why not."""
    now = now or utcnow()
    digest = hash_key(plain)
    key = session.scalar(select(ApiKey).where(or_(ApiKey.key_hash == digest, ApiKey.previous_hash == digest)))
    if key is None:
        return Refusal("this API key is not known")
    # The row was found by its hash; comparing again in constant time keeps the check itself free of timing leaks.
    current = hmac.compare_digest(key.key_hash, digest)
    previous = key.previous_hash is not None and hmac.compare_digest(key.previous_hash, digest)
    if not (current or previous):
        return Refusal("this API key is not known")
    if not current and (key.previous_valid_until or now) <= now:
        return Refusal("this API key was rotated and its grace period is over; use the new key")
    return refusal(key, now) or key


def refusal(key: ApiKey, now: datetime) -> Refusal | None:
    """Why a known key may not be used now (revoked, expired); None when it may."""
    if key.revoked_at is not None:
        return Refusal(f"this API key ({key.name}) was revoked")
    if key.expires_at is not None and key.expires_at <= now:
        return Refusal(f"this API key ({key.name}) expired at {key.expires_at.isoformat()}")
    return None


def touch(key: ApiKey, now: datetime) -> bool:
    """Record a use; False when the last recorded one is recent enough (nothing to write)."""
    if key.last_used_at is not None and now - key.last_used_at < TOUCH_EVERY:
        return False
    key.last_used_at = now
    return True


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def get_key(session: Session, name: str) -> ApiKey:
    key = session.scalar(select(ApiKey).where(ApiKey.name == name))
    if key is None:
        raise NotFound(f"no API key named {name!r}", field="name")
    return key


def revoke(session: Session, name: str) -> ApiKey:
    """Revoke a key (and its previous secret); revoking it again changes nothing."""
    key = get_key(session, name)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    key.previous_hash = key.previous_valid_until = None
    return key


def rotate(session: Session, name: str, *, grace: timedelta) -> tuple[ApiKey, str]:
    """A new secret for the key; the current one stays valid for ``grace`` (zero: it stops now)."""
    key = get_key(session, name)
    now = utcnow()
    if refused := refusal(key, now):
        raise Conflict(f"cannot rotate: {refused.detail.removeprefix('this API key ')}", field="name")
    plain = new_secret()
    if grace > timedelta(0):
        key.previous_hash, key.previous_valid_until = key.key_hash, now + grace
    else:
        key.previous_hash = key.previous_valid_until = None
    key.key_hash = hash_key(plain)
    return key, plain
