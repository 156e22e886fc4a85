"""The review page in Chromium: a reviewer logs in and resolves 20 items from the keyboard alone, one undo included;
the items are cold-start draws, so they are served blind (no suggestion on the page, Enter accepts nothing); the
stored labels are checked and a screenshot is kept (docs/review-page.png)."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import uvicorn
from sqlalchemy import select

from service import db
from service.config import PolicySettings, Settings
from service.db import transaction
from service.jobs import worker
from service.jobs.context import WorkerContext
from service.main import create_app
from service.store import keys
from service.tables import Label, ReviewVote
from tests.conftest import ADMIN_KEY, SPAM_TASK
from tests.fakes import HashEmbedder, KeywordTeacher

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("UNDERSTUDY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "review-page.png"
TEXTS = ["win a free prize now", "see you at lunch", "claim your cash reward", "can you pick up milk"]


@dataclass(frozen=True)
class LiveServer:
    url: str
    settings: Settings
    reviewer_key: str
    client_key: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(tmp_path: Path, task: dict[str, object], items: list[dict[str, str]]) -> Iterator[LiveServer]:
    """The app on a real port over SQLite with ``task``, its ``items`` labeled by the fake models and waiting for
    the reviewer "rita"."""
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'understudy.db'}",
        adapters_dir=tmp_path / "adapters",
        admin_key=ADMIN_KEY,
        policy=PolicySettings(min_reviews=30, seed_reviews=40),
    )
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=_free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    url = f"http://127.0.0.1:{server.config.port}"
    with transaction(app.state.sessions) as session:
        _, reviewer_key = keys.create_key(session, name="rita", role="reviewer")
        _, client_key = keys.create_key(session, name=f"client-{uuid.uuid4().hex[:6]}", role="client")
    http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {client_key}"})
    name = task["name"]
    assert http.post("/v1/tasks", json=task).status_code == 201
    assert http.post(f"/v1/tasks/{name}/batches", json={"items": items}).status_code == 202
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    assert http.put(f"/v1/tasks/{name}/reviewers/rita", headers=admin).status_code == 200
    context = WorkerContext(
        settings=settings,
        sessions=app.state.sessions,
        teacher_factory=KeywordTeacher,
        embedder_factory=HashEmbedder,
        student_loader=lambda path: pytest.fail(f"no student expected, asked for {path}"),
    )
    while worker.run_once(context):
        pass
    yield LiveServer(url, settings, reviewer_key, client_key)
    server.should_exit = True
    thread.join(timeout=10)
    app.state.engine.dispose()


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """40 cold-start items waiting for review."""
    yield from serve(tmp_path, SPAM_TASK, [{"id": f"m{i}", "text": f"{TEXTS[i % 4]} {i}"} for i in range(60)])


def log_in(page: Page, server: LiveServer) -> None:
    """Log in as the reviewer from the keyboard and wait for the first item."""
    page.goto(server.url + "/review")
    page.wait_for_function("document.activeElement && document.activeElement.id === 'key'")
    page.keyboard.type(server.reviewer_key)
    page.keyboard.press("Enter")
    page.wait_for_function(
        "document.querySelector('#review') && document.querySelector('#review').dataset.busy === 'false'"
    )


def test_reviewer_resolves_twenty_items_from_the_keyboard(live_server: LiveServer) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium chromium-driver (or set UNDERSTUDY_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(10_000)

        focused = "document.activeElement && document.activeElement.id === 'key'"
        page.goto(live_server.url + "/review")
        page.wait_for_function(focused)  # the form autofocuses the key field: type without clicking
        page.keyboard.type(live_server.client_key)
        page.keyboard.press("Enter")
        page.wait_for_selector("#login-error")
        assert "cannot review" in page.inner_text("#login-error")
        assert not page.context.cookies(), "a client key gets no session"

        page.wait_for_function(focused)
        page.keyboard.type(live_server.reviewer_key)
        page.keyboard.press("Enter")
        page.wait_for_url(f"{live_server.url}/review/sms")
        cookie = page.context.cookies()[0]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        review = page.locator("#review")
        page.wait_for_function("document.querySelector('#review').dataset.busy === 'false'")

        def current() -> int:
            return int(review.get_attribute("data-item-id") or 0)

        def press(key: str) -> None:
            before = review.get_attribute("data-item-id")
            page.keyboard.press(key)
            page.wait_for_function(
                "before => { const r = document.querySelector('#review');"
                " return r.dataset.busy === 'false' && r.dataset.itemId !== before; }",
                arg=before,
            )

        # A cold-start draw certifies the machine: the page must not show the machine's answer.
        assert review.get_attribute("data-blind") == "true"
        assert review.get_attribute("data-suggestion") == ""
        assert page.locator("#machine").is_hidden() and page.locator("#blind").is_visible()
        assert "Suggestion" not in page.inner_text("#item")
        # G hides and shows the guidelines (version 1: the task's instructions, rendered from Markdown).
        assert page.get_attribute("#guidelines", "data-version") == "1"
        assert page.locator("#guidelines .guidelines").is_visible()
        page.keyboard.press("g")
        assert page.locator("#guidelines .guidelines").is_hidden()
        page.keyboard.press("g")
        assert page.locator("#guidelines .guidelines").is_visible()
        blind_item = current()
        page.keyboard.press("Enter")
        page.wait_for_function("document.querySelector('#status').textContent.includes('Blind review')")
        assert current() == blind_item, "Enter has no suggestion to accept on a blind item"

        expected: dict[int, str] = {}
        keys_pressed = ["1", "2", "2"]
        undone: tuple[int, str] | None = None
        step = 0
        while len(expected) < 20:
            item_id = current()
            assert review.get_attribute("data-blind") == "true"
            key = keys_pressed[step % 3]
            label = {"1": "ham", "2": "spam"}[key]
            press(key)
            expected[item_id] = label
            step += 1
            if len(expected) == 10 and undone is None:
                press("z")
                assert current() == item_id, "undo brings back the item just answered"
                undone = (item_id, label)
                del expected[item_id]
        page.wait_for_function("document.querySelector('#review').dataset.reviewed === '20'")
        assert "You: 20 answered" in page.inner_text("#progress")
        page.screenshot(path=str(SCREENSHOT))
        browser.close()

    sessions = db.open(live_server.settings)
    with db.transaction(sessions) as session:
        humans = list(session.scalars(select(Label).where(Label.source == "human").order_by(Label.id)))
        final = {label.item_id: label.label for label in humans}
        assert {item_id: final[item_id] for item_id in expected} == expected
        assert len(humans) == 21, "the undone answer's label stays in the history"
        assert undone is not None
        history = [label.label for label in humans if label.item_id == undone[0]]
        assert history[0] == undone[1] and history[-1] == expected[undone[0]]
        votes = list(session.scalars(select(ReviewVote).where(ReviewVote.item_id == undone[0]).order_by(ReviewVote.id)))
        assert votes[0].undone_at is not None and votes[-1].undone_at is None
        assert all(label.reviewer == "rita" for label in humans)
    db.engine_of(sessions).dispose()
