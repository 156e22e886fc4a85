"""The review load benchmark end to end on a small queue: a real server, concurrent reviewers, every item answered."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import func, select

from service.bench.review_load import review_load_table, run_review_load
from service.bench.review_load_setup import seed
from service.db import make_engine, session_factory, transaction
from service.store import keys, review, review_team
from service.tables import ApiKey, Label, ReviewEntry, ReviewVote


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


def test_threads_sharing_one_engine_answer_each_item_once(database_url: str) -> None:
    """Eight threads of one process lease and resolve from the same queue: on SQLite they queue for the one pooled
    connection, on PostgreSQL they lock rows; either way no transaction fails and no item is answered twice."""
    task_name, plain_keys = seed(database_url, items=80, reviewers=8)
    engine = make_engine(database_url)
    sessions = session_factory(engine)
    with sessions() as session:
        reviewer_keys = [keys.find_key(session, plain) for plain in plain_keys]
    errors: list[BaseException] = []

    def work(key: ApiKey | keys.Refusal) -> None:
        assert isinstance(key, ApiKey)
        try:
            while True:
                with transaction(sessions) as session:
                    task = review_team.task_for(session, key, task_name)
                    leased = review.next_item(session, task=task, reviewer=key.name, lease_s=600)
                    if leased is None:
                        return
                    review.resolve(session, task=task, item_id=leased.item.id, reviewer=key.name, label="ham")
        except BaseException as error:  # a thread cannot fail the test itself; the main thread reports it
            errors.append(error)

    threads = [threading.Thread(target=work, args=(key,)) for key in reviewer_keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    with transaction(sessions) as session:
        answered = list(session.scalars(select(ReviewVote.item_id)))
        assert sorted(answered) == sorted(set(answered)) and len(answered) == 80
        assert session.scalar(select(func.count()).select_from(ReviewEntry)) == 0
    engine.dispose()
