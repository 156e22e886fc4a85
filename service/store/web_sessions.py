"""Review page sessions: started at login with a random token (the cookie; only its hash is stored) and a CSRF
token, ended at logout; a session is only as good as its key (revoked or expired keys end their sessions)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.store import keys
from service.tables import ApiKey, WebSession, utcnow


@dataclass(frozen=True)
class LoggedIn:
    key: ApiKey
    csrf_token: str
    expires_at: datetime


def start(session: Session, key: ApiKey, *, lifetime: timedelta) -> tuple[str, WebSession]:
    """A new session for the key; returns the cookie's token (shown only now) and the row."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    row = WebSession(
        token_hash=keys.hash_key(token),
        key_id=key.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        expires_at=now + lifetime,
    )
    session.add(row)
    session.flush()
    return token, row


def find(session: Session, token: str, *, now: datetime) -> LoggedIn | keys.Refusal:
    found = session.execute(
        select(WebSession, ApiKey)
        .join(ApiKey, ApiKey.id == WebSession.key_id)
        .where(WebSession.token_hash == keys.hash_key(token))
    ).first()
    if found is None:
        return keys.Refusal("this session is not known; log in again")
    row, key = found
    if row.ended_at is not None:
        return keys.Refusal("this session was logged out; log in again")
    logged_in = LoggedIn(key=key, csrf_token=row.csrf_token, expires_at=row.expires_at)
    return refusal(logged_in, now) or logged_in


def refusal(logged_in: LoggedIn, now: datetime) -> keys.Refusal | None:
    """Why a session read earlier may not be used now (it expired, or its key was revoked or expired)."""
    if logged_in.expires_at <= now:
        return keys.Refusal("this session has expired; log in again")
    return keys.refusal(logged_in.key, now)


def end(session: Session, token: str) -> bool:
    """End the session with this token; False when there was none to end."""
    row = session.scalar(select(WebSession).where(WebSession.token_hash == keys.hash_key(token)))
    if row is None or row.ended_at is not None:
        return False
    row.ended_at = utcnow()
    return True
