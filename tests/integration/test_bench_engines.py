"""`understudy bench engines` end to end on a small file: both engines as child processes, outputs compared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.bench.engines import run_engines_bench

pytestmark = pytest.mark.integration


def test_both_engines_label_the_generated_file_alike(tmp_path: Path) -> None:
    result = run_engines_bench(
        Path("builtin:sms_spam"),
        "text",
        "label",
        work_dir=tmp_path / "work",
        rows=600,
        train_size=200,
        epsilon=0.1,
        json_out=tmp_path / "engines.json",
    )
    runs = result["runs"]
    assert set(runs) == {"local", "ray_2_actors"}
    for run in runs.values():
        assert run["counts"]["rows"] == 600 and run["counts"]["student"] == 600
        assert run["rows_per_s"] > 0 and run["peak_pss_mib"] > 100, "the sampler saw the child's models"
    assert runs["ray_2_actors"]["peak_pss_mib"] > runs["local"]["peak_pss_mib"], "actors and raylet count too"
    assert result["differences"] == {"rows": 600, "labels_or_reasons": 0, "confidences": 0}
    assert json.loads((tmp_path / "engines.json").read_text())["table"] == result["table"]
