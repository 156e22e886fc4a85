"""`understudy bench bulk` end to end: real student, the label CLI killed mid-file and resumed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.bench.bulk import run_bulk_bench

pytestmark = pytest.mark.integration


def test_bulk_label_is_killed_resumed_and_complete(tmp_path: Path) -> None:
    result = run_bulk_bench(
        Path("builtin:sms_spam"),
        "text",
        "label",
        work_dir=tmp_path / "work",
        rows=1200,
        train_size=200,
        kill_after_s=600,
        kill_after_rows=256,
        epsilon=0.1,
        json_out=tmp_path / "bulk.json",
    )
    assert result["killed"]["exit_code"] == -9 and 256 <= result["killed"]["rows_written"] < 1200
    assert result["resumed"]["counts"]["resumed_from"] == result["killed"]["rows_written"]
    output = result["output"]
    assert output["rows"] == 1200 and output["in_order_once_each"]
    assert output["sources"] == {"student": 1200}, "--escalate review never asks the teacher"
    assert output["accuracy"] > 0.9
    if output["accepted_share"]:
        assert output["accepted_accuracy"] >= 0.9
    assert json.loads((tmp_path / "bulk.json").read_text())["table"] == result["table"]
