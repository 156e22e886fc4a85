"""Final labels with provenance out to JSONL, CSV, Parquet or a Hugging Face `datasets` folder (save_to_disk), and
raw items in from the same file types. A row is a plain dict; nested fields (reasons, votes, meta) stay nested in
JSONL and become JSON strings in the columnar formats, so every column has one scalar type."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from service.errors import Invalid
from service.schemas import ItemIn, item_in

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
            writer.writerows(flat(row) for row in rows)
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


def read_rows(source: bytes | Path, fmt: TableFormat) -> list[dict[str, Any]]:
    """The rows of a file (bytes for jsonl, csv, parquet; a folder for hf)."""
    if fmt == "hf":
        from datasets import load_from_disk

        if not isinstance(source, Path):
            raise Invalid("a datasets folder is read from a path, not from an upload", field="format")
        return [dict(row) for row in load_from_disk(str(source))]
    data = source.read_bytes() if isinstance(source, Path) else source
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return [dict(row) for row in pq.read_table(io.BytesIO(data)).to_pylist()]
        except pa.ArrowInvalid as exc:
            raise Invalid(f"not a Parquet file: {exc}", field="body") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Invalid("the file is not UTF-8 text", field="body") from exc
    if fmt == "csv":
        return [dict(row) for row in csv.DictReader(io.StringIO(text))]
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise Invalid(f"line {number} is not JSON: {exc.msg}", field=f"line {number}") from exc
            if not isinstance(row, dict):
                raise Invalid(f"line {number} is not a JSON object", field=f"line {number}")
            rows.append(row)
    return rows


def items_from_rows(rows: Sequence[Mapping[str, Any]]) -> list[ItemIn]:
    """Raw items: `text` is required, `id` (or `external_id`) names the item (else its row number), every other
    column goes into the item's meta."""
    items = []
    for index, row in enumerate(rows):
        text = row.get("text")
        if not isinstance(text, str) or not text.strip():
            raise Invalid(f"row {index} has no text", field=f"rows.{index}.text")
        ident = next((row[key] for key in ID_COLUMNS if row.get(key) not in (None, "")), f"row-{index}")
        meta = {key: _plain(value) for key, value in row.items() if key != "text" and key not in ID_COLUMNS}
        items.append(item_in(ident=str(ident), text=text, meta=meta, field=f"rows.{index}"))
    return items


def _plain(value: Any) -> Any:
    """JSON-able values as they are; anything else (timestamps, bytes) as its string form."""
    try:
        json.dumps(value)
    except TypeError:
        return str(value)
    return value
