"""The review page of a spans task in Chromium: the teacher's spans are drawn on the text; a reviewer relabels and
removes them from the keyboard (Tab, a label's key, Delete), adds spans by selecting words with shift+arrows or
with the mouse and pressing a label's key, and submits the set with Enter (none: no entity). The stored span sets
are checked, offsets in code points across an emoji included, and a screenshot is kept (docs/review-spans.png)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page
from sqlalchemy import select

from service import db
from service.tables import Item, Label
from tests.browser.test_review_page import CHROMIUM, CHROMIUM_ARGS, LiveServer, log_in, serve

pytestmark = pytest.mark.browser

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "review-spans.png"
TASK = {
    "name": "entities",
    "kind": "spans",
    "labels": [
        {"name": "person", "description": "a named person"},
        {"name": "location", "description": "a city, country or place"},
    ],
    "instructions": "Mark every person and place named in the post.",
}
TEXTS = {
    "relabel": "then Ann flew to Rome",
    "keys": "visit New York with Eve",
    "mouse": "nothing much here today",
    "emoji": "\U0001f389 party with Zoë tonight",
}
EXPECTED = {
    # Rome relabeled a location.
    "relabel": [[5, 8, "person"], [17, 21, "location"]],
    # New and York removed, then "New York" selected with shift+arrows and labeled a location.
    "keys": [[6, 14, "location"], [20, 23, "person"]],
    # "here" double-clicked (the selection's trailing space is trimmed) and labeled a location.
    "mouse": [[13, 17, "location"]],
    # Accepted as suggested: code-point offsets, though the emoji takes two UTF-16 units in the page.
    "emoji": [[13, 16, "person"]],
}


@pytest.fixture
def spans_server(tmp_path: Path) -> Iterator[LiveServer]:
    yield from serve(tmp_path, TASK, [{"id": key, "text": text} for key, text in TEXTS.items()])


def _press(page: Page, *keys: str) -> None:
    for key in keys:
        page.keyboard.press(key)


def test_reviewer_draws_and_corrects_spans_from_the_keyboard_and_the_mouse(spans_server: LiveServer) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium chromium-driver (or set UNDERSTUDY_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(10_000)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda message: print("console:", message.text))
        log_in(page, spans_server)
        review = page.locator("#review")
        assert "label the selected text" in page.inner_text(".keys")

        def drawn() -> list[list[object]]:
            spans = json.loads(page.locator("#item-text").get_attribute("data-spans") or "[]")
            return [[s["start"], s["end"], s["label"]] for s in spans]

        def submit() -> None:
            before = review.get_attribute("data-item-id")
            page.keyboard.press("Enter")
            page.wait_for_function(
                "before => { const r = document.querySelector('#review');"
                " return r.dataset.busy === 'false' && r.dataset.itemId !== before; }",
                arg=before,
            )

        seen = []
        for _ in range(len(TEXTS)):
            ref = page.inner_text("#item-ref").split(" · ")[1]
            seen.append(ref)
            # Proposals are reviewed in random order, with the teacher's spans shown.
            assert review.get_attribute("data-blind") == "false" and "random order" in page.inner_text("#explanation")
            marks = page.locator("#item-text mark.span")
            if ref == "relabel":
                assert drawn() == [[5, 8, "person"], [17, 21, "person"]]
                assert marks.count() == 2 and "%" in (marks.first.get_attribute("title") or "")
                _press(page, "Tab", "Tab", "2")
                assert "is now location" in page.inner_text("#status")
            elif ref == "keys":
                _press(page, "Tab", "Delete")
                assert drawn() == [[10, 14, "person"], [20, 23, "person"]]
                _press(page, "Delete")  # the focus moved on to York
                assert drawn() == [[20, 23, "person"]]
                _press(page, "Escape", "ArrowRight", "ArrowRight", "Shift+ArrowRight", "2")
                assert 'added "New York" as location' in page.inner_text("#status")
                page.screenshot(path=str(SCREENSHOT))
            elif ref == "mouse":
                assert drawn() == []
                box = page.evaluate(
                    """() => {
                      const node = document.querySelector('#item-text').firstChild;
                      const range = document.createRange();
                      const at = node.textContent.indexOf('here');
                      range.setStart(node, at); range.setEnd(node, at + 4);
                      const r = range.getBoundingClientRect();
                      return {x: r.x + r.width / 2, y: r.y + r.height / 2};
                    }"""
                )
                page.mouse.dblclick(box["x"], box["y"])
                page.keyboard.press("2")
                assert 'added "here" as location' in page.inner_text("#status")
            else:
                assert drawn() == [[13, 16, "person"]]
            assert drawn() == EXPECTED[ref]
            submit()
            assert "saved" in page.inner_text("#status")
        assert sorted(seen) == sorted(TEXTS)
        assert not errors, errors
        browser.close()

    sessions = db.open(spans_server.settings)
    with db.transaction(sessions) as session:
        stored = {
            external: json.loads(label)
            for external, label in session.execute(
                select(Item.external_id, Label.label)
                .join(Label, Label.item_id == Item.id)
                .where(Label.source == "human")
            )
        }
        assert stored == EXPECTED
    db.engine_of(sessions).dispose()
