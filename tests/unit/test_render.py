from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.pipeline import kinds
from service.pipeline.render import (
    default_prompts_dir,
    few_shot_examples,
    nearest_examples,
    nearest_examples_per_label,
    render_prompt,
    template_source,
)
from service.ports import Example, LabelDef, TaskDef

TASK = TaskDef(
    name="sms",
    labels=(LabelDef("ham", "a normal personal message"), LabelDef("spam", "advertising or scams")),
    instructions="Classify the SMS message as spam or ham.",
)
EXAMPLES = [Example("see you at 6", "ham"), Example("WIN a prize, call now", "spam")]
TEMPLATES = sorted(p.stem for p in (default_prompts_dir() / "classify").glob("*.j2"))


def test_the_repo_has_the_default_template_and_variants() -> None:
    assert TaskDef("t", (), "").template == "classify/chatml"
    assert "chatml" in TEMPLATES
    assert len(TEMPLATES) >= 3


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_template_shows_everything_and_ends_where_the_label_goes(name: str) -> None:
    rendered = render_prompt(TASK, "are we still on for lunch", EXAMPLES, f"classify/{name}", default_prompts_dir())
    prompt = rendered.prompt
    assert prompt.endswith("Label:")
    for needle in ("Classify the SMS message", "ham", "spam", "see you at 6", "WIN a prize", "still on for lunch"):
        assert needle in prompt
    # Examples come before the item, in the order given (the nearest is last).
    assert prompt.index("see you at 6") < prompt.index("WIN a prize") < prompt.index("still on for lunch")


def test_label_descriptions_are_rendered_by_the_default_template() -> None:
    prompt = render_prompt(TASK, "x", [], "classify/chatml", default_prompts_dir()).prompt
    assert "a normal personal message" in prompt
    assert "advertising or scams" in prompt


def test_shas_identify_the_template_and_the_prompt() -> None:
    first = render_prompt(TASK, "one", [], "classify/chatml", default_prompts_dir())
    second = render_prompt(TASK, "two", [], "classify/chatml", default_prompts_dir())
    other = render_prompt(TASK, "one", [], "classify/plain", default_prompts_dir())
    assert first.template_sha == second.template_sha != other.template_sha
    assert first.prompt_sha != second.prompt_sha
    assert len(first.template_sha) == 64


def test_a_template_from_another_folder_is_used_and_versioned(tmp_path: Path) -> None:
    (tmp_path / "classify").mkdir()
    (tmp_path / "classify" / "tiny.j2").write_text("{{ text }} ->{% for l in labels %} {{ l.name }}{% endfor %}\n")
    rendered = render_prompt(TASK, "hello", [], "classify/tiny", tmp_path)
    assert rendered.prompt == "hello -> ham spam"
    assert template_source("classify/tiny", tmp_path).startswith("{{ text }}")


def test_an_undefined_template_variable_fails_loudly(tmp_path: Path) -> None:
    (tmp_path / "classify").mkdir()
    (tmp_path / "classify" / "typo.j2").write_text("{{ txet }}")
    with pytest.raises(Exception, match="txet"):
        render_prompt(TASK, "hello", [], "classify/typo", tmp_path)


def test_label_continuations_are_the_names_after_a_space() -> None:
    assert kinds.continuations(TASK) == (" ham", " spam")


def test_nearest_examples_are_by_cosine_with_the_nearest_last() -> None:
    pool = np.array([[1.0, 0.0], [0.0, 1.0], [10.0, 9.0], [-1.0, 0.0]])
    examples = [Example(str(i), "ham") for i in range(4)]
    picked = nearest_examples(np.array([1.0, 1.0]), pool, examples, 3)
    # Cosine ignores length: [10, 9] is nearest to [1, 1]; [-1, 0] is farthest and left out;
    # the tie between [1, 0] and [0, 1] keeps pool order before the list is reversed.
    assert [ex.text for ex in picked] == ["1", "0", "2"]


def test_nearest_examples_edge_cases() -> None:
    pool = np.eye(3)
    examples = [Example(str(i), "ham") for i in range(3)]
    assert nearest_examples(np.ones(3), pool, examples, 0) == []
    assert nearest_examples(np.ones(3), np.zeros((0, 3)), [], 4) == []
    assert len(nearest_examples(np.ones(3), pool, examples, 10)) == 3
    with pytest.raises(ValueError, match="rows"):
        nearest_examples(np.ones(3), pool, examples[:2], 1)


def test_nearest_examples_per_label_shows_every_label_nearest_last() -> None:
    pool = np.array([[1.0, 0.0], [0.9, 0.1], [0.8, 0.2], [0.0, 1.0], [0.1, 0.9]])
    examples = [
        Example("h1", "ham"),
        Example("h2", "ham"),
        Example("h3", "ham"),
        Example("s1", "spam"),
        Example("s2", "spam"),
    ]
    picked = nearest_examples_per_label(np.array([1.0, 0.05]), pool, examples, 4)
    # Two per label although plain kNN would take three hams; ordered by similarity, nearest last.
    assert [ex.text for ex in picked] == ["s1", "s2", "h2", "h1"]
    three_labels = [*examples[:4], Example("x", "other")]
    assert len(nearest_examples_per_label(np.array([1.0, 0.0]), pool, three_labels, 2)) == 3
    assert nearest_examples_per_label(np.array([1.0, 0.0]), pool, examples, 0) == []


def test_few_shot_examples_go_per_label_only_when_every_label_gets_two() -> None:
    pool = np.array([[1.0, 0.0], [0.9, 0.1], [0.8, 0.2], [0.0, 1.0], [0.1, 0.9]])
    two = [
        Example("h1", "ham"),
        Example("h2", "ham"),
        Example("h3", "ham"),
        Example("s1", "spam"),
        Example("s2", "spam"),
    ]
    query = np.array([1.0, 0.05])
    assert few_shot_examples(query, pool, two, 4) == nearest_examples_per_label(query, pool, two, 4)
    three = [*two[:4], Example("x", "other")]
    assert few_shot_examples(query, pool, three, 4) == nearest_examples(query, pool, three, 4)


def test_the_spans_template_shows_examples_as_the_json_answer_it_asks_for() -> None:
    task = TaskDef(
        name="ents",
        labels=(LabelDef("person", "a named person"), LabelDef("location")),
        instructions="Find the entities.",
        kind="spans",
    )
    example = Example("Ada lived in London .", '[[0, 3, "person"], [13, 19, "location"]]')
    prompt = render_prompt(task, "Bob left Paris", [example], "spans/chatml", default_prompts_dir()).prompt
    answer = '{"entities": [{"text": "Ada", "label": "person"}, {"text": "London", "label": "location"}]}'
    assert f"Text: Ada lived in London .<|im_end|>\n<|im_start|>assistant\n{answer}<|im_end|>" in prompt
    assert "- person: a named person" in prompt and "- location\n" in prompt
    # The answer's JSON starts right away: vLLM's JSON decoders allow no whitespace before it.
    assert prompt.endswith("Text: Bob left Paris<|im_end|>\n<|im_start|>assistant\n")
