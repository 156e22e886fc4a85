"""API keys (admin only): the plain key is returned once."""

from __future__ import annotations

from fastapi import APIRouter, status

from service.api.deps import AdminDep, SessionDep
from service.api.schemas.keys import ApiKeyCreate, ApiKeyPublic
from service.store import keys

router = APIRouter(prefix="/v1/keys", tags=["keys"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ApiKeyPublic)
def create_key(body: ApiKeyCreate, session: SessionDep, _key: AdminDep) -> ApiKeyPublic:
    key, plain = keys.create_key(session, name=body.name, role=body.role)
    return ApiKeyPublic(name=key.name, role=key.role, key=plain)
