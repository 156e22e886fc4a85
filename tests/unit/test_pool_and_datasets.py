from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.datasets import load_builtin, read_labeled, write_jsonl
from service.errors import Invalid
from service.formats.tabular import count_rows, iter_rows
from service.pipeline.pool import LabeledPool, PoolEntry


def test_pool_latest_label_of_an_item_wins() -> None:
    pool = LabeledPool()
    vector = np.array([1.0, 0.0])
    pool.add(
        [PoolEntry(1, "a", "spam", "teacher", vector), PoolEntry(2, "b", "ham", "teacher", vector)], last_label_id=2
    )
    pool.add([PoolEntry(1, "a", "ham", "human", vector)], last_label_id=3)
    embeddings, examples, labels = pool.arrays()
    assert len(pool) == 2 and pool.last_label_id == 3
    assert embeddings.shape == (2, 2) and sorted(labels) == ["ham", "ham"]
    assert {example.text for example in examples} == {"a", "b"}


@pytest.mark.parametrize(
    ("name", "size", "labels"),
    [
        ("sms_spam", 4837, {"ham", "spam"}),
        ("trec", 15452, {"abbreviation", "description", "entity", "human", "location", "number"}),
        ("movie_reviews", 4866, {"fresh", "rotten"}),
    ],
)
def test_builtin_datasets_are_real(name: str, size: int, labels: set[str]) -> None:
    data = load_builtin(name)
    assert len(data) == size and {label for _, label in data} == labels
    assert all(text.strip() for text, _ in data)


def test_files_roundtrip_and_errors(tmp_path: Path) -> None:
    path = write_jsonl([("hello", "a"), ("bye", "b")], tmp_path / "d.jsonl")
    assert read_labeled(path, text_field="text", label_field="label") == [("hello", "a"), ("bye", "b")]
    with pytest.raises(Invalid, match="lacks field"):
        read_labeled(path, text_field="body", label_field="label")
    (tmp_path / "bad.jsonl").write_text("{nope\n")
    with pytest.raises(Invalid, match="not valid JSON"):
        list(iter_rows(tmp_path / "bad.jsonl", "jsonl"))
    with pytest.raises(Invalid, match="no such file"):
        list(iter_rows(tmp_path / "missing.csv", "csv"))
    with pytest.raises(Invalid, match="unknown dataset"):
        load_builtin("imagenet")


def test_count_rows_reads_a_parquet_footer_and_counts_text_rows(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": [f"t{i}" for i in range(1234)]}), tmp_path / "d.parquet", row_group_size=100)
    assert count_rows(tmp_path / "d.parquet") == 1234
    # A quoted CSV field may hold a newline, and JSONL blank lines are no rows: rows, not lines, are counted.
    (tmp_path / "d.csv").write_text('text\n"two\nlines"\nplain\n')
    assert count_rows(tmp_path / "d.csv") == 2
    (tmp_path / "d.jsonl").write_text('{"text": "a"}\n\n{"text": "b"}\n')
    assert count_rows(tmp_path / "d.jsonl") == 2
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(Invalid, match="not a Parquet file"):
        count_rows(tmp_path / "bad.parquet")
