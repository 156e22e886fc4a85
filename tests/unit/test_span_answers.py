"""The spans teacher's answers: the schema its decoder enforces, mentions mapped back to character offsets, and the
confidences read from token log-probabilities."""

from __future__ import annotations

import json
import math

import pytest

from service.pipeline import span_sets
from service.pipeline.agreement import pairwise_kappa
from service.pipeline.span_answers import answer_schema, read_answer
from service.pipeline.span_sets import Span
from service.ports import Generation

LABELS = ("person", "location")


def _generation(answer: object, *, logprob: float = -0.01, finished: bool = True) -> Generation:
    text = answer if isinstance(answer, str) else json.dumps(answer)
    ends = tuple(range(1, len(text) + 1))  # one token per character
    return Generation(text=text, token_ends=ends, token_logprobs=(logprob,) * len(ends), finished=finished)


def _answer(*entities: tuple[str, str]) -> dict[str, object]:
    return {"entities": [{"text": text, "label": label} for text, label in entities]}


def test_the_schema_names_the_labels_and_bounds_the_answer() -> None:
    schema = answer_schema(LABELS)
    entity = schema["properties"]["entities"]["items"]  # type: ignore[index]
    assert entity["properties"]["label"]["enum"] == list(LABELS)
    assert entity["additionalProperties"] is False and schema["required"] == ["entities"]
    assert schema["properties"]["entities"]["maxItems"] > 0  # type: ignore[index]


def test_mentions_map_to_offsets_in_reading_order_and_repeated_words_to_their_next_place() -> None:
    text = "Ann met Ann's friend Bob in Paris"
    proposal = read_answer(
        text, _generation(_answer(("Ann", "person"), ("Ann", "person"), ("paris", "location"))), LABELS
    )
    assert span_sets.members(proposal.name) == (Span(0, 3, "person"), Span(8, 11, "person"), Span(28, 33, "location"))
    assert proposal.dropped == 0 and proposal.problem is None
    # The whole answer's probability is the product of all its tokens'.
    answer = json.dumps(_answer(("Ann", "person"), ("Ann", "person"), ("paris", "location")))
    assert proposal.confidence == pytest.approx(math.exp(-0.01 * len(answer)))
    # Each span's own is that of its entity object's tokens, so shorter objects are surer.
    assert len(proposal.span_confidences) == 3
    assert proposal.span_confidences[2] < proposal.span_confidences[0] < 1


def test_an_answer_that_names_text_not_there_or_overlapping_is_not_trusted() -> None:
    text = "Bob went to New York"
    proposal = read_answer(
        text, _generation(_answer(("New York", "location"), ("York", "person"), ("Sydney", "location"))), LABELS
    )
    assert span_sets.members(proposal.name) == (Span(12, 20, "location"),)
    assert proposal.dropped == 2 and proposal.confidence == 0.0 and "2 mention(s)" in (proposal.problem or "")


def test_an_answer_cut_short_or_not_json_has_no_spans_and_no_confidence() -> None:
    cut = read_answer("Ann", _generation('{"entities": [{"text": "Ann"', finished=False), LABELS)
    assert cut.name == "[]" and cut.confidence == 0.0 and "token limit" in (cut.problem or "")
    broken = read_answer("Ann", _generation("not json"), LABELS)
    assert broken.name == "[]" and broken.confidence == 0.0 and "schema" in (broken.problem or "")
    empty = read_answer("nothing", _generation(_answer()), LABELS)
    assert empty.name == "[]" and empty.confidence > 0.5 and empty.problem is None


def test_braces_inside_mentions_do_not_confuse_the_entity_ranges() -> None:
    text = 'he said "{Ann}" twice'
    proposal = read_answer(text, _generation(_answer(('"{Ann}"', "person"))), LABELS)
    assert span_sets.members(proposal.name) == (Span(8, 15, "person"),)
    assert len(proposal.span_confidences) == 1 and 0 < proposal.span_confidences[0] < 1


def test_reviewers_of_a_spans_task_agree_by_span_f1() -> None:
    ann = span_sets.set_name([Span(0, 3, "person")])
    both = span_sets.set_name([Span(0, 3, "person"), Span(8, 12, "location")])
    votes = {1: {"rita": ann, "sam": both}, 2: {"rita": "[]", "sam": "[]"}}
    (pair,) = pairwise_kappa(votes=votes, spans=True)
    assert pair.observed == 0.5
    assert pair.span_f1 == pytest.approx((2 * 1 / 3 + 1.0) / 2)
    assert pairwise_kappa(votes=votes)[0].span_f1 is None
