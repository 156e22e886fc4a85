"""The lead's pages in Chromium: a lead logs in on the review page, follows its "to adjudicate" count to the
adjudication page and settles a disagreement from the keyboard, then opens the dashboard, where every plot loads,
and runs a consistency check from it.
Screenshots are kept (docs/adjudication.png, docs/dashboard.png)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from service import db
from service.db import transaction
from service.jobs import worker
from service.jobs.context import WorkerContext
from service.store import keys
from service.tables import Job, Label
from tests.browser.test_review_page import CHROMIUM, CHROMIUM_ARGS, TEXTS, LiveServer, live_server
from tests.conftest import ADMIN_KEY
from tests.fakes import HashEmbedder, KeywordTeacher

pytestmark = pytest.mark.browser
__all__ = ["live_server"]  # the fixture, imported to be used here

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
ADJUDICATION_SCREENSHOT = SCREENSHOT.with_name("adjudication.png")


def _review_everything(server: LiveServer) -> None:
    """Rita (always right) and Sam (wrong on his first answer and every third after it) answer everything waiting,
    gold items twice; a second batch with gold items follows the first."""
    sessions = db.open(server.settings)
    context = WorkerContext(
        settings=server.settings,
        sessions=sessions,
        teacher_factory=KeywordTeacher,
        embedder_factory=HashEmbedder,
        student_loader=lambda path: pytest.fail(f"no student expected, asked for {path}"),
    )
    with transaction(sessions) as session:
        _, sam_key = keys.create_key(session, name="sam", role="reviewer")
    admin = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert admin.put("/v1/tasks/sms/reviewers/sam").status_code == 200
    assert (
        admin.put("/v1/tasks/sms/review/settings", json={"audit_reviewers": 1, "gold_reviewers": 2}).status_code == 200
    )
    client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.client_key}"})
    reviewers = [(server.reviewer_key, 0), (sam_key, 3)]
    turns = {key: 0 for key, _ in reviewers}
    for round_ in range(5):
        if round_ == 2:  # a second batch, once the first is reviewed, with 20 gold items
            more = [
                {
                    "id": f"n{i}",
                    "text": f"{TEXTS[i % 4]} {i}",
                    "meta": {"gold_label": _right(TEXTS[i % 4])} if i < 20 else {},
                }
                for i in range(300)
            ]
            assert client.post("/v1/tasks/sms/batches", json={"items": more}).status_code == 202
        for key, every in reviewers:
            http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"})
            while (leased := http.post("/v1/tasks/sms/review/next")).status_code == 200:
                item = leased.json()
                right = _right(item["text"])
                turns[key] += 1
                label = ("ham" if right == "spam" else "spam") if every and turns[key] % every == 1 else right
                assert (
                    http.post(f"/v1/tasks/sms/review/{item['item_id']}/resolve", json={"label": label}).status_code
                    == 200
                )
        with transaction(sessions) as session:
            session.execute(update(Job).where(Job.state == "queued").values(not_before=None))
        while worker.run_once(context):
            pass
    db.engine_of(sessions).dispose()


def _right(text: str) -> str:
    return "spam" if any(word in text for word in ("prize", "cash")) else "ham"


def test_a_lead_opens_the_dashboard_from_the_review_page(live_server: LiveServer) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium chromium-driver (or set UNDERSTUDY_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    _review_everything(live_server)
    sessions = db.open(live_server.settings)
    with transaction(sessions) as session:
        _, lead_key = keys.create_key(session, name="lena", role="lead")
    db.engine_of(sessions).dispose()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(15_000)
        page.goto(live_server.url + "/review")
        page.fill("#key", lead_key)
        page.keyboard.press("Enter")
        page.wait_for_url(f"{live_server.url}/review/sms")
        # The review page's "to adjudicate" count leads a lead to the adjudication page.
        page.click("#adjudication-link")
        page.wait_for_url(f"{live_server.url}/ui/tasks/sms/adjudication")
        disputed = int(page.get_attribute("#adjudication", "data-item-id") or 0)
        assert disputed and "reviewers disagree" in page.inner_text("main"), page.inner_text("main")
        weighted = page.inner_text("#weighted")
        page.keyboard.press("Enter")  # the weighted answer, from the keyboard
        page.wait_for_selector("#adjudication-done")
        assert f"#{disputed} {weighted}: final" in page.inner_text("#adjudication-done")
        page.screenshot(path=str(ADJUDICATION_SCREENSHOT))
        page.click("text=Dashboard")
        page.wait_for_url(f"{live_server.url}/ui/tasks/sms")
        page.wait_for_function(
            "[...document.querySelectorAll('img.chart')].every(i => i.complete && i.naturalWidth > 0)"
        )
        assert page.locator("img.chart").count() == 3
        assert "60 in all" in page.inner_text("#progress-panel")
        reviewers = page.inner_text("#reviewers-panel")
        assert "rita" in reviewers and "sam" in reviewers
        assert "teacher, raw" in page.inner_text("#accuracy-panel")
        page.click("#check-consistency")  # a consistency check from the page: a form post and back
        page.wait_for_selector("#consistency-notice")
        assert re.search(r"checked (\d+) items against \1: \d+ new pairs", page.inner_text("#consistency-notice"))
        page.wait_for_function(
            "[...document.querySelectorAll('img.chart')].every(i => i.complete && i.naturalWidth > 0)"
        )
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        browser.close()

    sessions = db.open(live_server.settings)
    with transaction(sessions) as session:
        final = session.scalars(select(Label).where(Label.item_id == disputed).order_by(Label.id.desc())).first()
        assert final is not None and (final.source, final.label, final.reviewer) == ("adjudicated", weighted, "lena")
    db.engine_of(sessions).dispose()
