"""The problem+json body (RFC 9457) of every error response, declared once and listed in every route's responses
so that /docs shows what a failure looks like."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ProblemIssue(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A stable URI naming the kind of problem, e.g. .../problems/not-found.")
    title: str
    status: int
    detail: str = Field(description="What went wrong, for a person.")
    field: str | None = Field(None, description="The input at fault, when one is.")
    errors: list[ProblemIssue] | None = Field(None, description="Every invalid field, for invalid-input problems.")


def _problem(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description}


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _problem("Malformed request (for example a body that is not JSON)."),
    401: _problem("Missing or unknown API key."),
    403: _problem("The key's role may not do this."),
    404: _problem("No such resource."),
    409: _problem("Conflicts with the stored state."),
    413: _problem("Request body too large."),
    422: _problem("Invalid input; `errors` lists the fields at fault."),
    500: _problem("Unexpected error (logged)."),
}
"""Passed to every router (see main.create_app), so each operation documents the same error body."""

PROBLEM_REF = "#/components/schemas/Problem"


def problem_media_type(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with every Problem response served as application/problem+json, as the handlers in
    service.errors send it (FastAPI files additional responses under application/json)."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for response in operation.get("responses", {}).values():
                content = response.get("content", {})
                if content.get("application/json", {}).get("schema", {}).get("$ref") == PROBLEM_REF:
                    content["application/problem+json"] = content.pop("application/json")
    return schema
