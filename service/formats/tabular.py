"""Final labels with provenance out to JSONL, CSV, Parquet or a Hugging Face `datasets` folder (save_to_disk), and
rows in from the same file types: the one reader of tabular files, for imports, bulk labeling and benchmarks. A row
is a plain dict; nested fields (reasons, votes, meta) stay nested in JSONL and become JSON strings in the columnar
formats, so every column has one scalar type."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from service.api.schemas.batches import ItemCreate, item_create
from service.errors import Invalid

TableFormat = Literal["jsonl", "csv", "parquet", "hf"]
TABLE_FORMATS: tuple[TableFormat, ...] = ("jsonl", "csv", "parquet", "hf")
NESTED = ("reasons", "votes", "meta")
ID_COLUMNS = ("id", "external_id")


def flat(row: Mapping[str, Any]) -> dict[str, Any]:
    return {key: json.dumps(value, sort_keys=True) if key in NESTED else value for key, value in row.items()}


def to_bytes(rows: Sequence[Mapping[str, Any]], fmt: Literal["jsonl", "csv", "parquet"]) -> bytes:
    if fmt == "jsonl":
        return "".join(json.dumps(row, default=str) + "\n" for row in rows).encode()
    if fmt == "csv":
        text = io.StringIO()
        if rows:
            writer = csv.DictWriter(text, fieldnames=list(rows[0]))
            writer.writeheader()
            # A list (a multi-label set) is a JSON string in CSV; Parquet and datasets keep it a list column.
            writer.writerows(
                {key: json.dumps(value) if isinstance(value, list) else value for key, value in flat(row).items()}
                for row in rows
            )
        return text.getvalue().encode()
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([flat(row) for row in rows]), sink)
    return sink.getvalue()


def write_hf(rows: Sequence[Mapping[str, Any]], folder: Path) -> None:
    """A Hugging Face `datasets` folder, loadable with datasets.load_from_disk(folder)."""
    from datasets import Dataset

    Dataset.from_list([flat(row) for row in rows]).save_to_disk(str(folder))


def write_file(rows: Sequence[Mapping[str, Any]], fmt: TableFormat, path: Path) -> None:
    if fmt == "hf":
        write_hf(rows, path)
    else:
        path.write_bytes(to_bytes(rows, fmt))


def format_of(path: Path) -> TableFormat:
    """The table format of a file by its suffix (a folder is a `datasets` folder)."""
    if path.is_dir():
        return "hf"
    formats: dict[str, TableFormat] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
    suffix = path.suffix.lower()
    if suffix not in formats:
        raise Invalid(f"{path}: unsupported file type {suffix!r}; use .jsonl, .csv or .parquet", field="path")
    return formats[suffix]


def iter_rows(source: bytes | Path, fmt: TableFormat) -> Iterator[dict[str, Any]]:
    """The rows of a file, streamed from a path (memory stays flat for millions of rows) or read from bytes (an
    upload); a folder for hf. Unreadable input is an Invalid naming the file (for a path) and the line."""
    where = f"{source}: " if isinstance(source, Path) else ""
    if isinstance(source, Path) and not source.exists():
        raise Invalid(f"no such file: {source}", field="path")
    if fmt == "hf":
        from datasets import load_from_disk

        if not isinstance(source, Path):
            raise Invalid("a datasets folder is read from a path, not from an upload", field="format")
        yield from (dict(row) for row in load_from_disk(str(source)))
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(source if isinstance(source, Path) else io.BytesIO(source))
            for batch in parquet.iter_batches(batch_size=10_000):
                yield from batch.to_pylist()
        except pa.ArrowInvalid as exc:
            raise Invalid(f"{where}not a Parquet file: {exc}", field="body") from exc
    else:
        with _text_lines(source, where) as lines:
            if fmt == "csv":
                yield from (dict(row) for row in csv.DictReader(lines))
            else:
                yield from _json_lines(lines, where)


def count_rows(path: Path) -> int:
    """Rows in a file: from a Parquet file's footer, else by reading it through."""
    if format_of(path) == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return int(pq.ParquetFile(path).metadata.num_rows)
        except pa.ArrowInvalid as exc:
            raise Invalid(f"{path}: not a Parquet file: {exc}", field="body") from exc
    return sum(1 for _ in iter_rows(path, format_of(path)))


@contextmanager
def _text_lines(source: bytes | Path, where: str) -> Iterator[Iterator[str]]:
    """The lines of UTF-8 text (a leading BOM dropped); an Invalid when the bytes are not UTF-8."""
    handle = (
        source.open(encoding="utf-8-sig", newline="")
        if isinstance(source, Path)
        else io.TextIOWrapper(io.BytesIO(source), encoding="utf-8-sig", newline="")
    )
    try:
        with handle:
            yield iter(handle)
    except UnicodeDecodeError as exc:
        raise Invalid(f"{where}the file is not UTF-8 text", field="body") from exc


def _json_lines(lines: Iterator[str], where: str) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise Invalid(f"{where}line {number} is not valid JSON: {exc.msg}", field=f"line {number}") from exc
            if not isinstance(row, dict):
                raise Invalid(f"{where}line {number} is not a JSON object", field=f"line {number}")
            yield row


def read_rows(source: bytes | Path, fmt: TableFormat) -> list[dict[str, Any]]:
    """Every row of a file at once (see iter_rows)."""
    return list(iter_rows(source, fmt))


@dataclass(frozen=True)
class ImportedTask:
    item: ItemCreate
    label: str | None
    """The label the file gives it, if any; it becomes a human label."""
    annotator: str | None = None
    """Who made that label, as the file says (a Label Studio annotator); None: the importing key."""
    labeled_at: datetime | None = None
    """When it was made, as the file says; None: at import."""


BAD_ROWS_SHOWN = 10


def imported_from_rows(
    rows: Sequence[Mapping[str, Any]],
    *,
    label_field: str | None = None,
    labels: Sequence[str] = (),
    read_label: Callable[[Any, str], str],
) -> list[ImportedTask]:
    """Raw items: `text` is required, `id` (or `external_id`) names the item (else its row number), every other
    column goes into the item's meta. With ``label_field``, that column (empty in a row: no label) is the item's
    human label as ``read_label`` stores it from the value and the row's text (store.tasks.read_label: one of the
    task's ``labels``, a multi-label task's list of them, or a spans task's list of spans, or a JSON string of
    either), raising Invalid for a value that is no label of the task; a file with any such value is refused
    whole, naming its rows and the first one's fault."""
    imported: list[ImportedTask] = []
    bad: list[int] = []
    first_fault = ""
    not_meta = {"text", *ID_COLUMNS, *([label_field] if label_field else [])}
    for index, row in enumerate(rows):
        text = row.get("text")
        if not isinstance(text, str) or not text.strip():
            raise Invalid(f"row {index} has no text", field=f"rows.{index}.text")
        ident = next((row[key] for key in ID_COLUMNS if row.get(key) not in (None, "")), f"row-{index}")
        meta = {key: _plain(value) for key, value in row.items() if key not in not_meta}
        label = None
        if label_field is not None and row.get(label_field) not in (None, ""):
            try:
                label = read_label(row[label_field], text)
            except Invalid as error:
                bad.append(index)
                first_fault = first_fault or error.detail
        imported.append(ImportedTask(item_create(ident=str(ident), text=text, meta=meta, field=f"rows.{index}"), label))
    if label_field is not None and rows and not any(label_field in row for row in rows):
        raise Invalid(f"no column {label_field!r} in the file", field="label_field")
    if bad:
        shown = ", ".join(str(i) for i in bad[:BAD_ROWS_SHOWN]) + (
            f" and {len(bad) - BAD_ROWS_SHOWN} more" if len(bad) > BAD_ROWS_SHOWN else ""
        )
        raise Invalid(
            f"column {label_field!r} has values that are not labels of the task ({', '.join(labels)}) "
            f"in rows {shown}; nothing was imported (row {bad[0]}: {first_fault})",
            field="label_field",
        )
    return imported


def _plain(value: Any) -> Any:
    """JSON-able values as they are; anything else (timestamps, bytes) as its string form."""
    try:
        json.dumps(value)
    except TypeError:
        return str(value)
    return value
