"""Label Studio JSON (a list of tasks with `data`, `predictions` and `annotations`), both ways, and the labeling
config both sides agree on: <Choices name="label" toName="text"> over <Text name="text" value="$text">, with
``choice="multiple"`` for a multi-label task (a result's ``choices`` then hold the item's labels; an annotation with
none chosen is the empty set), or <Labels name="label" toName="text"> for a spans task (a ``labels`` result per span,
with its ``start``, ``end``, ``text`` and one label).

Label Studio ignores a task's `id` on import and gives it one of its own, so the item's identity travels in
`data.external_id`; importing the export back matches on it (store/exports.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import quoteattr

from service.api.schemas.batches import item_create
from service.errors import Invalid
from service.formats.tabular import ImportedTask
from service.pipeline.sources import HUMAN_SOURCES
from service.ports import LabelDef, TaskKind

FROM_NAME = "label"
TO_NAME = "text"
ANNOTATOR_PREFIX = "labelstudio:"


def label_config(labels: Sequence[LabelDef], *, kind: TaskKind = "single_label") -> str:
    """The labeling config of a task: its text, and one choice per label with the label's description as the
    hint Label Studio shows on hover (several may be chosen for a multi-label task); for a spans task one
    ``<Label>`` per label over the text."""
    if kind == "spans":
        return (
            "<View>\n"
            f'  <Labels name="{FROM_NAME}" toName="{TO_NAME}">\n{_options("Label", labels)}\n  </Labels>\n'
            f'  <Text name="{TO_NAME}" value="${TO_NAME}"/>\n'
            "</View>\n"
        )
    choice = "multiple" if kind == "multi_label" else "single"
    return (
        "<View>\n"
        f'  <Text name="{TO_NAME}" value="${TO_NAME}"/>\n'
        f'  <Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="{choice}" showInline="true">\n'
        f"{_options('Choice', labels)}\n"
        "  </Choices>\n"
        "</View>\n"
    )


def _options(tag: str, labels: Sequence[LabelDef]) -> str:
    """One ``<Choice>`` or ``<Label>`` per label, its description as the hint Label Studio shows on hover."""
    return "\n".join(
        f"    <{tag} value={quoteattr(label.name)}"
        + (f" hint={quoteattr(label.description)}" if label.description else "")
        + "/>"
        for label in labels
    )


def _choice(label: Any, text: str) -> list[dict[str, Any]]:
    """A result choosing the label, or a label set's labels (none: no result, as Label Studio saves it); for spans
    (a list of {start, end, label}) one ``labels`` result per span."""
    chosen = label if isinstance(label, list) else [label]
    if not chosen:
        return []
    if isinstance(chosen[0], dict):
        return [
            {
                "from_name": FROM_NAME,
                "to_name": TO_NAME,
                "type": "labels",
                "value": {
                    "start": span["start"],
                    "end": span["end"],
                    "text": text[int(span["start"]) : int(span["end"])],
                    "labels": [span["label"]],
                },
            }
            for span in chosen
        ]
    return [{"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices", "value": {"choices": chosen}}]


def to_labelstudio(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One Label Studio task per row: the machine's latest prediction with its score and model (none for an item
    drawn at random and still waiting, so its reviewer answers blind), and the final human label as an annotation;
    our provenance, the reviewer included, goes into the task's meta."""
    tasks = []
    for row in rows:
        task: dict[str, Any] = {
            "data": {"text": row["text"], "external_id": row["external_id"]},
            "meta": {
                "understudy_item_id": row["item_id"],
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
        if row["prediction"] is not None and not row["blind"]:
            task["predictions"].append(
                {
                    "model_version": row["model"],
                    "score": row["prediction_confidence"],
                    "result": _choice(row["prediction"], row["text"]),
                }
            )
        if row["source"] in HUMAN_SOURCES and row["label"] is not None:
            task["annotations"].append(
                {"result": _choice(row["label"], row["text"]), "was_cancelled": False, "created_at": row["labeled_at"]}
            )
        tasks.append(task)
    return tasks


def from_labelstudio(
    payload: Any, *, labels: Sequence[str], kind: TaskKind, read_label: Callable[[Any, str], str]
) -> list[ImportedTask]:
    """Tasks from a Label Studio export. The text is data["text"] (or the only string in data); the item id is
    data["external_id"] or the task id; the latest annotation that was not cancelled gives the label (as
    ``read_label`` stores it, raising Invalid for a value that is none of the task's: one choice, for a multi-label
    task the list of choices, none being the empty set, for a spans task its ``labels`` results as spans),
    its ``completed_by`` the annotator and its ``created_at`` the time. Other data fields, and the task's own meta
    (under ``labelstudio_meta``), go into the item's meta. Errors name the task by position, Label Studio id and
    external id."""
    if isinstance(payload, dict):
        payload = [payload]
    if not isinstance(payload, list):
        raise Invalid("a Label Studio export is a JSON list of tasks", field="body")
    imported = []
    for index, task in enumerate(payload):
        data = task.get("data") if isinstance(task, dict) else None
        where = _where(index, task)
        if not isinstance(data, dict):
            raise Invalid(f"{where} has no data object", field=f"{index}.data")
        strings = [value for value in data.values() if isinstance(value, str)]
        text = data.get("text", strings[0] if len(strings) == 1 else None)
        if not isinstance(text, str) or not text.strip():
            raise Invalid(f"{where} has no data.text", field=f"{index}.data.text")
        ident = data.get("external_id", task.get("id", f"task-{index}"))
        meta = {key: value for key, value in data.items() if key not in ("text", "external_id")}
        if isinstance(task.get("meta"), dict) and task["meta"]:
            meta["labelstudio_meta"] = task["meta"]
        field = f"{index}.annotations"
        annotation = _annotation(task.get("annotations") or [], where=where, field=field, kind=kind)
        chosen, annotator, labeled_at = annotation if annotation is not None else (None, None, None)
        label = None
        if chosen is not None:
            try:
                label = read_label(chosen, text)
            except Invalid as error:
                raise Invalid(f"{where} is annotated {chosen!r}: {error.detail}", field=field) from None
        imported.append(
            ImportedTask(
                item_create(ident=str(ident), text=text, meta=meta, field=str(index)),
                label,
                annotator=annotator,
                labeled_at=labeled_at,
            )
        )
    return imported


def _where(index: int, task: Any) -> str:
    """A task as the user can find it: its position, Label Studio id and external id where it has them."""
    found = [f"Label Studio id {task['id']}"] if isinstance(task, dict) and "id" in task else []
    data = task.get("data") if isinstance(task, dict) else None
    if isinstance(data, dict) and "external_id" in data:
        found.append(f"external_id {data['external_id']!r}")
    return f"task {index}" + (f" ({', '.join(found)})" if found else "")


def _annotation(
    annotations: list[Any], *, where: str, field: str, kind: TaskKind
) -> tuple[Any, str | None, datetime | None] | None:
    """(label, annotator, time) of the latest annotation that was not cancelled and has a choice; for a multi-label
    task of the latest one not cancelled, its label the list of its choices (maybe empty); for a spans task its
    ``labels`` results as {start, end, label[, text]} spans (maybe none)."""
    multiple = kind == "multi_label"
    for annotation in reversed(annotations):
        if not isinstance(annotation, dict) or annotation.get("was_cancelled"):
            continue
        who, when = _annotator(annotation.get("completed_by")), _time(annotation, where, field)
        if kind == "spans":
            return _spans(annotation.get("result") or [], where, field), who, when
        for result in annotation.get("result") or []:
            choices = (result.get("value") or {}).get("choices") if isinstance(result, dict) else None
            if choices:
                if multiple:
                    return [str(choice) for choice in choices], who, when
                if len(choices) != 1:
                    raise Invalid(f"{where} has {len(choices)} choices; one is expected", field=field)
                return str(choices[0]), who, when
        if multiple:
            return [], who, when
    return None


def _spans(results: list[Any], where: str, field: str) -> list[dict[str, Any]]:
    """The spans of an annotation's ``labels`` results (other result types are skipped)."""
    spans = []
    for result in results:
        if not isinstance(result, dict) or result.get("type") != "labels":
            continue
        value = result.get("value") or {}
        chosen = value.get("labels") if isinstance(value, dict) else None
        if not isinstance(chosen, list) or len(chosen) != 1:
            raise Invalid(f"{where} has a span with {chosen!r} as labels; one label per span is expected", field=field)
        span = {"start": value.get("start"), "end": value.get("end"), "label": chosen[0]}
        spans.append(span | ({"text": value["text"]} if "text" in value else {}))
    return spans


def _annotator(completed_by: Any) -> str | None:
    """``labelstudio:<email or id>`` from completed_by as Label Studio exports it: a user id, an email, or a user
    object."""
    if isinstance(completed_by, dict):
        completed_by = completed_by.get("email") or completed_by.get("id")
    if completed_by is None or isinstance(completed_by, bool) or str(completed_by).strip() == "":
        return None
    return f"{ANNOTATOR_PREFIX}{completed_by}"[:200]


def _time(annotation: Mapping[str, Any], where: str, field: str) -> datetime | None:
    value = annotation.get("created_at")
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise Invalid(f"{where} has an annotation created_at that is not a time: {value!r}", field=field) from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)  # Label Studio writes UTC
