"""Label Studio JSON (a list of tasks with `data`, `predictions` and `annotations`), both ways, for a single-choice
text classification config: <Choices name="label" toName="text"> over <Text name="text" value="$text">."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from service.api.schemas.batches import item_create
from service.errors import Invalid
from service.formats.tabular import ImportedTask

FROM_NAME = "label"
TO_NAME = "text"


def _choice(label: str) -> list[dict[str, Any]]:
    return [{"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices", "value": {"choices": [label]}}]


def to_labelstudio(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One Label Studio task per row: the machine's latest prediction with its score and model, and the final
    human label as an annotation; our provenance goes into the task's meta."""
    tasks = []
    for row in rows:
        task: dict[str, Any] = {
            "id": row["item_id"],
            "data": {"text": row["text"], "external_id": row["external_id"]},
            "meta": {
                "state": row["state"],
                "source": row["source"],
                "reviewer": row["reviewer"],
                "reasons": row["reasons"],
                "prompt_version": row["prompt_version"],
                **({"item_meta": row["meta"]} if row["meta"] else {}),
            },
            "predictions": [],
            "annotations": [],
        }
        if row["prediction"] is not None:
            task["predictions"].append(
                {
                    "model_version": row["model"],
                    "score": row["prediction_confidence"],
                    "result": _choice(row["prediction"]),
                }
            )
        if row["source"] == "human" and row["label"] is not None:
            task["annotations"].append(
                {"result": _choice(row["label"]), "was_cancelled": False, "created_at": row["labeled_at"]}
            )
        tasks.append(task)
    return tasks


def from_labelstudio(payload: Any, *, labels: Sequence[str]) -> list[ImportedTask]:
    """Tasks from a Label Studio export. The text is data["text"] (or the only string in data); the item id is
    data["external_id"] or the task id; the latest annotation that was not cancelled gives the label."""
    if isinstance(payload, dict):
        payload = [payload]
    if not isinstance(payload, list):
        raise Invalid("a Label Studio export is a JSON list of tasks", field="body")
    imported = []
    for index, task in enumerate(payload):
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict):
            raise Invalid(f"task {index} has no data object", field=f"{index}.data")
        strings = [value for value in data.values() if isinstance(value, str)]
        text = data.get("text", strings[0] if len(strings) == 1 else None)
        if not isinstance(text, str) or not text.strip():
            raise Invalid(f"task {index} has no data.text", field=f"{index}.data.text")
        ident = data.get("external_id", task.get("id", f"task-{index}"))
        meta = {key: value for key, value in data.items() if key not in ("text", "external_id")}
        label = _annotation(task.get("annotations") or [], index=index)
        if label is not None and label not in labels:
            raise Invalid(
                f"task {index} is annotated {label!r}, not one of {list(labels)}", field=f"{index}.annotations"
            )
        imported.append(ImportedTask(item_create(ident=str(ident), text=text, meta=meta, field=str(index)), label))
    return imported


def _annotation(annotations: list[Any], *, index: int) -> str | None:
    for annotation in reversed(annotations):
        if not isinstance(annotation, dict) or annotation.get("was_cancelled"):
            continue
        for result in annotation.get("result") or []:
            choices = (result.get("value") or {}).get("choices") if isinstance(result, dict) else None
            if choices:
                if len(choices) != 1:
                    raise Invalid(
                        f"task {index} has {len(choices)} choices; one is expected", field=f"{index}.annotations"
                    )
                return str(choices[0])
    return None
