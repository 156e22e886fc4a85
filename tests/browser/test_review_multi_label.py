"""The review page of a multi-label task in Chromium: number keys toggle labels in the answer, which starts as
the machine's suggested set, Enter submits it, and an empty answer says that no label applies; the stored sets are
checked and a screenshot is kept (docs/review-multi-label.png)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from service import db
from service.tables import Item, Label
from tests.browser.test_review_page import CHROMIUM, CHROMIUM_ARGS, LiveServer, log_in, serve

pytestmark = pytest.mark.browser

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "review-multi-label.png"
TASK = {
    "name": "emotions",
    "kind": "multi_label",
    "labels": [
        {"name": "anger", "description": "annoyed, furious"},
        {"name": "joy", "description": "happy, grateful"},
        {"name": "sadness", "description": "grief, disappointment"},
    ],
    "instructions": "Which emotions does the comment express? Any number of them, or none.",
    "review_budget": 10,
}
TEXTS = ["joy at the final whistle", "anger and sadness after the loss", "the bus comes at noon", "joy joy"]


@pytest.fixture
def multi_label_server(tmp_path: Path) -> Iterator[LiveServer]:
    """Too small a budget to draw anything at random: every item waits with the teacher's set as its suggestion."""
    yield from serve(tmp_path, TASK, [{"id": f"e{i}", "text": f"{TEXTS[i % 4]} {i}"} for i in range(8)])


def test_reviewer_answers_label_sets_from_the_keyboard(multi_label_server: LiveServer) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium chromium-driver (or set UNDERSTUDY_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    answers: dict[str, str] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(10_000)
        log_in(page, multi_label_server)
        review = page.locator("#review")
        assert "add or remove that label" in page.inner_text(".keys")

        def submit() -> None:
            before = review.get_attribute("data-item-id")
            page.keyboard.press("Enter")
            page.wait_for_function(
                "before => { const r = document.querySelector('#review');"
                " return r.dataset.busy === 'false' && r.dataset.itemId !== before; }",
                arg=before,
            )

        for _ in range(4):
            ref = page.inner_text("#item-ref").split(" · ")[1]
            text = page.inner_text("#item-text")
            assert review.get_attribute("data-blind") == "false"
            suggested = [label for label in ("anger", "joy", "sadness") if label in text.split()]
            # The answer starts as the machine's set, shown on the buttons.
            assert review.get_attribute("data-chosen") == ",".join(suggested)
            assert page.inner_text("#suggestion") == (", ".join(suggested) or "no label")
            assert page.locator("button.label.chosen").count() == len(suggested)
            if text.startswith("joy at"):
                page.keyboard.press("3")  # add sadness: bittersweet
                page.keyboard.press("1")  # add anger, then take it out again
                page.keyboard.press("1")
                assert review.get_attribute("data-chosen") == "joy,sadness"
                answers[ref] = '["joy", "sadness"]'
            elif text.startswith("anger and"):
                page.keyboard.press("1")
                page.keyboard.press("3")  # neither: the empty set is an answer
                assert review.get_attribute("data-chosen") == ""
                answers[ref] = "[]"
            else:
                answers[ref] = '["joy"]' if suggested else "[]"
            if len(answers) == 4:
                page.screenshot(path=str(SCREENSHOT))
            submit()
            assert "saved" in page.inner_text("#status")
        browser.close()

    sessions = db.open(multi_label_server.settings)
    with db.transaction(sessions) as session:
        stored = {
            external: label
            for external, label in session.execute(
                select(Item.external_id, Label.label)
                .join(Label, Label.item_id == Item.id)
                .where(Label.source == "human")
                .order_by(Label.id)
            )
        }
        assert stored == answers
    db.engine_of(sessions).dispose()
