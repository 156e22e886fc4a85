"""API keys (admin only): create (the plain key is returned once), list, revoke, rotate."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request, status

from service.api.deps import AdminDep, SessionDep
from service.api.schemas.keys import ApiKeyCreate, ApiKeyInfo, ApiKeyPublic, ApiKeyRotate
from service.store import keys
from service.tables import ApiKey, utcnow

router = APIRouter(prefix="/v1/keys", tags=["keys"])


def _info(key: ApiKey) -> ApiKeyInfo:
    return ApiKeyInfo(
        name=key.name,
        role=key.role,
        project=key.project,
        created_at=key.created_at,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
        last_used_at=key.last_used_at,
        previous_valid_until=key.previous_valid_until,
        active=keys.refusal(key, utcnow()) is None,
    )


def _forget_cached(request: Request) -> None:
    """This process stops honouring a revoked or rotated secret, and the revoked key's sessions, at once (others
    within deps.KEY_CACHE_S)."""
    request.app.state.key_cache.clear()
    request.app.state.session_cache.clear()


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ApiKeyPublic)
def create_key(body: ApiKeyCreate, session: SessionDep, _key: AdminDep) -> ApiKeyPublic:
    key, plain = keys.create_key(
        session, name=body.name, role=body.role, expires_at=body.expires_at, project=body.project
    )
    return ApiKeyPublic(**_info(key).model_dump(), key=plain)


@router.get("", response_model=list[ApiKeyInfo])
def list_keys(session: SessionDep, _key: AdminDep) -> list[ApiKeyInfo]:
    return [_info(key) for key in keys.list_keys(session)]


@router.post("/{name}/revoke", response_model=ApiKeyInfo)
def revoke_key(name: str, request: Request, session: SessionDep, _key: AdminDep) -> ApiKeyInfo:
    key = keys.revoke(session, name)
    _forget_cached(request)
    return _info(key)


@router.post("/{name}/rotate", response_model=ApiKeyPublic)
def rotate_key(name: str, body: ApiKeyRotate, request: Request, session: SessionDep, _key: AdminDep) -> ApiKeyPublic:
    key, plain = keys.rotate(session, name, grace=timedelta(seconds=body.grace_s))
    _forget_cached(request)
    return ApiKeyPublic(**_info(key).model_dump(), key=plain)
