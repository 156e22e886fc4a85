"""`understudy label --engine ray` on a local Ray cluster gives what the single-process path gives, and resumes."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from service.bench.bulk import TASK_NAME, prepare, scratch_settings, write_input
from service.datasets import read_labeled
from service.errors import Invalid
from service.jobs.bulk_label import label_file
from service.jobs.context import WorkerContext

pytestmark = pytest.mark.integration

ROWS = 2000


def _records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_ray_engine_labels_like_the_single_process_path(tmp_path: Path) -> None:
    pairs = read_labeled(Path("builtin:sms_spam"), text_field="text", label_field="label")
    random.Random(0).shuffle(pairs)
    settings = scratch_settings(tmp_path)
    prepare(settings, pairs[:200], sorted({label for _, label in pairs}), epsilon=0.1, seed=0)
    source = tmp_path / "items.csv"
    write_input(source, pairs[200:], ROWS)
    ctx = WorkerContext.from_settings(settings)
    common = {"task_name": TASK_NAME, "path": source, "text_field": "text", "id_field": "id"}
    local_out, ray_out = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    local = label_file(ctx, out=local_out, progress=lambda _: None, **common)  # type: ignore[arg-type]
    assert local["teacher"] > 0, "some rows must reach the teacher for the comparison to cover it"

    # Resume from a checkpoint two chunks in, as after a kill.
    ray_out.write_text("".join(local_out.read_text().splitlines(keepends=True)[:512]))
    seen: list[int] = []
    counts = label_file(ctx, out=ray_out, progress=seen.append, engine="ray", actors=2, **common)  # type: ignore[arg-type]
    assert seen[0] == 512 and seen[-1] == ROWS and seen == sorted(seen)

    expected, got = _records(local_out), _records(ray_out)
    after = expected[512:]
    assert counts == {
        "resumed_from": 512,
        "rows": ROWS,
        "student": sum(r["source"] == "student" for r in after),
        "teacher": sum(r["source"] == "teacher" for r in after),
        "review": sum(not r["accepted"] for r in after),
    }
    assert [r["id"] for r in got] == [f"r{i}" for i in range(ROWS)]
    for want, have in zip(expected, got, strict=True):
        # The actors run torch on one thread each, the single process on two: sums may round differently.
        assert have["confidence"] == pytest.approx(want["confidence"], abs=1e-5)
        assert {**have, "confidence": 0} == {**want, "confidence": 0}

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n' * 300 + '{"text": ""}\n')
    with pytest.raises(Invalid, match="row 301"):
        label_file(
            ctx,
            task_name=TASK_NAME,
            path=bad,
            out=tmp_path / "bad-out.jsonl",
            text_field="text",
            id_field=None,
            progress=lambda _: None,
            engine="ray",
        )
