"""What the teacher writes for a spans task, and how its answer becomes a span set with a confidence.

The teacher answers ``{"entities": [{"text": ..., "label": ...}, ...]}`` under the JSON schema of
``answer_schema``, which its decoder enforces (vLLM's structured outputs on the server, lm-format-enforcer in
process), so every answer parses and names only the task's labels. Mentions are mapped back to character offsets
here: each is looked for from the end of the previous one (the prompt asks for reading order), then anywhere, then
ignoring case; one that is not in the text, or that overlaps a span already placed, is dropped and counted.

The item's confidence is the probability of the whole answer under the model: the exponentiated sum of its
tokens' log-probabilities. It is the joint probability of the set, the decision to stop listing included, not a
product of per-span scores. An answer cut short or with a dropped mention is not trusted (confidence 0). Each
span's own confidence is that of the tokens of its entity object, shown to reviewers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from service.pipeline.render import RenderedPrompt
from service.pipeline.span_sets import Span, set_name
from service.pipeline.teacher_scoring import fit_prompt
from service.ports import Example, GenerateRequest, Generation, TaskDef, Teacher

MAX_ENTITIES = 16
"""Entities an answer may list: bounds the answer's length (and a tiny model's loops)."""
MAX_MENTION_CHARS = 200


def answer_schema(labels: Sequence[str]) -> dict[str, object]:
    """The JSON schema of a spans answer for a task with these labels."""
    entity = {
        "type": "object",
        "properties": {
            "text": {"type": "string", "minLength": 1, "maxLength": MAX_MENTION_CHARS},
            "label": {"type": "string", "enum": list(labels)},
        },
        "required": ["text", "label"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {"entities": {"type": "array", "items": entity, "maxItems": MAX_ENTITIES}},
        "required": ["entities"],
        "additionalProperties": False,
    }


def answer_tokens(labels: Sequence[str]) -> int:
    """Tokens to let an answer run to: about 12 per entity beyond its words, for a few entities of a few words."""
    return 96 + 4 * max(len(label) for label in labels)


@dataclass(frozen=True)
class Proposal:
    """The teacher's span set for one text."""

    name: str
    """Its stored name (span_sets.set_name)."""
    confidence: float
    span_confidences: tuple[float, ...]
    """Per span, in text order, the probability of its entity's tokens."""
    dropped: int
    """Mentions not found in the text, or overlapping an earlier one."""
    problem: str | None
    """Why the answer is not trusted (cut short, or not the schema's JSON), else None."""


def read_answer(text: str, generation: Generation, labels: Sequence[str]) -> Proposal:
    """The span set, its confidence and each span's, from the teacher's ``generation`` for ``text``."""
    if not generation.finished:
        return _untrusted("the answer was cut at its token limit")
    try:
        entities = json.loads(generation.text)["entities"]
        mentions = [(str(entity["text"]), str(entity["label"])) for entity in entities]
    except (json.JSONDecodeError, KeyError, TypeError):
        return _untrusted(f"not the schema's JSON: {generation.text[:80]!r}")
    ranges = _entity_ranges(generation.text)
    placed: list[tuple[Span, float]] = []
    cursor = dropped = 0
    for index, (mention, label) in enumerate(mentions):
        span = _locate(text, mention.strip(), label, cursor) if label in labels else None
        if span is None or any(span.start < other.end and other.start < span.end for other, _ in placed):
            dropped += 1
            continue
        cursor = span.end
        confidence = _probability(generation, *ranges[index]) if index < len(ranges) else 0.0
        placed.append((span, confidence))
    placed.sort()
    whole = math.exp(sum(generation.token_logprobs)) if not dropped else 0.0
    return Proposal(
        name=set_name(span for span, _ in placed),
        confidence=whole,
        span_confidences=tuple(confidence for _, confidence in placed),
        dropped=dropped,
        problem=f"{dropped} mention(s) not in the text or overlapping" if dropped else None,
    )


def propose_spans(
    teacher: Teacher,
    task: TaskDef,
    texts: Sequence[str],
    examples_per_item: Sequence[Sequence[Example]],
    *,
    prompts_dir: Path,
    max_text_tokens: int | None,
) -> list[tuple[Proposal, RenderedPrompt, bool]]:
    """The teacher's span set of each text, after a prompt with its few-shot examples (cut to fit, with room for
    the answer), with the prompt and whether the text was cut for it."""
    tokens = answer_tokens(task.label_names)
    fitted = [
        fit_prompt(teacher, task, text, examples, task.template, prompts_dir, max_text_tokens, answer_tokens=tokens)
        for text, examples in zip(texts, examples_per_item, strict=True)
    ]
    schema = answer_schema(task.label_names)
    generations = teacher.generate([GenerateRequest(prompt.prompt, schema, tokens) for prompt, _ in fitted])
    return [
        (read_answer(text, generation, task.label_names), prompt, truncated)
        for text, generation, (prompt, truncated) in zip(texts, generations, fitted, strict=True)
    ]


def _untrusted(problem: str) -> Proposal:
    return Proposal(name=set_name(()), confidence=0.0, span_confidences=(), dropped=0, problem=problem)


def _locate(text: str, mention: str, label: str, cursor: int) -> Span | None:
    """Where ``mention`` is in ``text``: from ``cursor`` on, else anywhere, else ignoring case."""
    if not mention:
        return None
    for start in (text.find(mention, cursor), text.find(mention)):
        if start >= 0:
            return Span(start, start + len(mention), label)
    lowered = text.lower()
    if len(lowered) == len(text):  # lower() keeps offsets for almost every text; where it does not, no match
        start = lowered.find(mention.lower())
        if start >= 0:
            return Span(start, start + len(mention), label)
    return None


def _entity_ranges(answer: str) -> list[tuple[int, int]]:
    """The character ranges of the objects inside the answer's ``entities`` array, in order."""
    ranges: list[tuple[int, int]] = []
    depth, start, quoted, escaped = 0, 0, False, False
    for position, char in enumerate(answer):
        if quoted:
            quoted = not (char == '"' and not escaped)
            escaped = char == "\\" and not escaped
            continue
        if char == '"':
            quoted = True
        elif char in "{[":
            if char == "{" and depth == 2:
                start = position
            depth += 1
        elif char in "}]":
            depth -= 1
            if char == "}" and depth == 2:
                ranges.append((start, position + 1))
    return ranges


def _probability(generation: Generation, start: int, end: int) -> float:
    """The probability of the tokens that overlap ``[start, end)`` of the answer."""
    total, begin = 0.0, 0
    for token_end, logprob in zip(generation.token_ends, generation.token_logprobs, strict=True):
        if token_end > start and begin < end:
            total += logprob
        begin = token_end
    return math.exp(total)
