"""What every request model shares: strict parsing, and refusal of strings the stores cannot hold."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator

Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,99}$")]
NonEmptyText = Annotated[str, StringConstraints(min_length=1)]
LabelValue = str | list[str] | list[dict[str, int | str]]
"""An item's label: one of the task's labels; for a multi_label task the list of those that apply (possibly
empty); for a spans task a list of {"start", "end", "label"} character spans (a "text" key is checked when given)."""


def unstorable(value: Any, where: str = "") -> str | None:
    """Where in a JSON-like `value` the first string lies that the stores cannot hold: one with a NUL character
    (PostgreSQL refuses it in text and JSON columns) or an unpaired surrogate (not encodable as UTF-8), keys
    included; None when every string can be stored."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return where or "value"
        return where or "value" if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{where}.{key}" if where else str(key)
            # A bad key is named by where it sits, so the message does not carry the character back.
            found = unstorable(key, f"a key in {where or 'the body'}") or unstorable(item, inner)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = unstorable(item, f"{where}.{index}" if where else str(index))
            if found:
                return found
    return None


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        found = unstorable(data)
        if found is not None:
            raise ValueError(f"{found} holds a NUL character or an unpaired surrogate, which cannot be stored")
        return data
