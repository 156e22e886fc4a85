"""The review load benchmark end to end on a small queue: a real server, concurrent reviewers, every item answered."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from service.bench.review_load import review_load_table, run_review_load
from service.db import make_engine, session_factory, transaction
from service.tables import Label, ReviewEntry


def test_review_load_answers_every_item(database_url: str, tmp_path: Path) -> None:
    result = run_review_load(
        database_url=database_url, data_dir=tmp_path, store="test", reviewers=3, items=30, duration_s=60, combined=True
    )
    assert result["items_answered"] == 30
    # Each reviewer's first round trip is not timed; one who connects after the others drained the queue has none.
    assert 30 - 3 <= result["round_trips"] < 30
    assert 0 < result["round_trip"]["p50_ms"] <= result["round_trip"]["p99_ms"]
    assert "| test | resolve?next=true | 3 |" in review_load_table([result])
    engine = make_engine(database_url)
    with transaction(session_factory(engine)) as session:
        assert session.scalar(select(func.count()).select_from(Label).where(Label.source == "human")) == 30
        assert session.scalar(select(func.count()).select_from(ReviewEntry)) == 0
    engine.dispose()
