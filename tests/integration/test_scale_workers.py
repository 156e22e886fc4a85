"""Four worker processes share one batch on PostgreSQL through its chunk jobs (claimed with FOR UPDATE SKIP
LOCKED), with a stand-in teacher server that sleeps per prompt: every item labeled exactly once, every job done."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.bench.scale import run_workers
from tests.conftest import PG_ADMIN_URL, postgres_admin

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def test_four_workers_label_every_item_of_a_batch_exactly_once(tmp_path: Path) -> None:
    postgres_admin().close()  # skips, saying why, where PostgreSQL is not reachable
    run = run_workers(
        4, items=400, job_items=50, teacher_delay_ms=10.0, embed_ms=None, pg_admin_url=PG_ADMIN_URL, work=tmp_path
    )
    assert run["completed"] and run["jobs"] == run["jobs_done"] >= 8
    assert (run["items_lost"], run["items_labeled_twice"], run["items_still_queued"]) == (0, 0, 0)
