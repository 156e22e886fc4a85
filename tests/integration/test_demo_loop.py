"""The whole loop on real parts, small: real HTTP API, worker, SmolLM2 teacher, MiniLM LoRA student, SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.demo import run_demo

pytestmark = pytest.mark.integration


def test_demo_runs_the_whole_loop(tmp_path: Path) -> None:
    report = run_demo(
        items=180, holdout=100, cascade_items=60, seed=1, json_out=tmp_path / "demo.json", data_dir=tmp_path / "demo"
    )
    assert report["items"] == 180
    assert report["auto_accepted_share"] + report["review_share"] == pytest.approx(1.0)
    assert report["human_reviews"] >= 60, "cold start must go through human review"
    assert report["final_label_accuracy"] >= 0.9, "every item ends with a label, mostly human ones here"
    student = report["student"]
    assert student["train_examples"] >= 100 and (tmp_path / "demo" / "adapters" / "sms-spam" / "v1").is_dir()
    assert report["student_holdout"]["accuracy"] > 0.8
    cascade = report["cascade"]
    assert cascade["items"] == 60
    assert cascade["student_share"] + cascade["teacher_share"] + cascade["human_share"] == pytest.approx(1.0)
    cost = {source["source"]: source for source in report["cost"]["sources"]}
    assert {"teacher", "student", "embedder", "training"} <= set(cost), "every model's time is on the bill"
    assert cost["training"]["items"] == student["train_examples"] and cost["training"]["cpu_seconds"] > 0
    assert cost["student"]["items"] == 60 and cost["embedder"]["items"] == 180 + 60
    assert report["cost"]["labeled"] == 240 and report["cost"]["total_usd"] > 0
    assert (tmp_path / "demo.json").is_file()
