"""Teacher prompts: Jinja2 templates under prompts/, label continuations, and nearest few-shot examples.

Every template ends exactly where the model writes the label, right after "Label:" with no trailing space;
each label is then scored as the continuation " <name>" (see `kinds.continuations`), so all templates share
one convention and the label tokens are the same whatever the template. Multi-label templates end where the
assistant's answer opens, before the newline of its first "<label>: yes|no" line.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jinja2
import numpy as np

from service.pipeline import label_sets, span_sets
from service.ports import Example, FloatArray, TaskDef

_REPO_PROMPTS = Path(__file__).resolve().parents[2] / "prompts"
_INSTALLED_PROMPTS = Path(sys.prefix) / "share" / "understudy" / "prompts"


@dataclass(frozen=True)
class RenderedPrompt:
    prompt: str
    template_sha: str
    """sha256 of the template's source: the prompt version stored with every prediction."""
    prompt_sha: str
    """sha256 of the rendered prompt."""


def default_prompts_dir() -> Path:
    """The checkout's prompts/ folder, else the copy a non-editable install puts under <prefix>/share."""
    return _REPO_PROMPTS if _REPO_PROMPTS.is_dir() else _INSTALLED_PROMPTS


@lru_cache(maxsize=8)
def _environment(prompts_dir: Path) -> jinja2.Environment:
    # StrictUndefined: a misspelt variable must fail loudly, not silently drop part of the prompt.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(prompts_dir)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
    )


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_template(template_name: str, prompts_dir: Path) -> None:
    """Raise ValueError naming the available templates when prompts/<template_name>.j2 does not exist."""
    if not (prompts_dir / f"{template_name}.j2").is_file():
        available = sorted(str(p.relative_to(prompts_dir).with_suffix("")) for p in prompts_dir.rglob("*.j2"))
        raise ValueError(f"no prompt template {template_name!r}; available: {available}")


def template_source(template_name: str, prompts_dir: Path) -> str:
    """The source text of prompts/<template_name>.j2 (e.g. "classify/chatml")."""
    env = _environment(prompts_dir)
    source, _, _ = env.loader.get_source(env, f"{template_name}.j2")  # type: ignore[union-attr]
    return source


def render_prompt(
    task: TaskDef,
    text: str,
    examples: Sequence[Example],
    template_name: str,
    prompts_dir: Path,
) -> RenderedPrompt:
    """Render the prompt for one item; examples are shown in the given order (nearest last)."""
    template = _environment(prompts_dir).get_template(f"{template_name}.j2")
    prompt = template.render(
        instructions=task.instructions,
        labels=task.labels,
        examples=_shown(task, examples),
        text=text,
    )
    return RenderedPrompt(
        prompt=prompt,
        template_sha=_sha256(template_source(template_name, prompts_dir)),
        prompt_sha=_sha256(prompt),
    )


def _shown(task: TaskDef, examples: Sequence[Example]) -> Sequence[object]:
    """The examples as a template reads them; a multi-label example also gives the labels ``present`` in its set, a
    spans example its ``answer`` as the teacher is asked to write it (span_sets.answer_json)."""
    if task.kind == "spans":
        return [
            {"text": example.text, "label": example.label, "answer": span_sets.answer_json(example.label, example.text)}
            for example in examples
        ]
    if task.kind != "multi_label":
        return examples
    return [
        {"text": example.text, "label": example.label, "present": label_sets.members(example.label, task.label_names)}
        for example in examples
    ]


WORD_JOINER = "\u2060"
"""Invisible, and no tokenizer's control token contains it: put inside one, it leaves plain text."""


def escape_special(text: str, special_tokens: Sequence[str]) -> str:
    """``text`` with every control token of the teacher's tokenizer broken by a word joiner after its first
    character, so an item cannot open a chat turn, end the text or otherwise speak for the template."""
    for token in sorted(special_tokens, key=len, reverse=True):
        if len(token) > 1 and token in text:
            text = text.replace(token, token[0] + WORD_JOINER + token[1:])
    return text


def nearest_examples(
    query: FloatArray,
    pool: FloatArray,
    pool_examples: Sequence[Example],
    k: int,
) -> list[Example]:
    """The k pool examples most cosine-similar to query, least similar first and nearest last.

    Nearest last puts the most relevant example right before the item, where a small model attends most.
    """
    if len(pool_examples) != pool.shape[0]:
        raise ValueError(f"pool has {pool.shape[0]} rows but {len(pool_examples)} examples")
    if k <= 0 or pool.shape[0] == 0:
        return []
    similarity = _cosine(query, pool)
    # Stable sort on -similarity so ties keep pool order; then reverse to put the nearest last.
    order = np.argsort(-similarity, kind="stable")[:k]
    return [pool_examples[int(i)] for i in order[::-1]]


def nearest_examples_per_label(
    query: FloatArray,
    pool: FloatArray,
    pool_examples: Sequence[Example],
    k: int,
) -> list[Example]:
    """The nearest examples of every label in the pool, max(1, k // labels) each, nearest last.

    Showing each label beside the item keeps a small teacher from copying the majority label of plain
    kNN. On SMS Spam (SmolLM2-135M, 4 shots from 200 labeled items) macro-F1 went from 0.80 with plain
    kNN to 0.89, and to 0.91 with the label bias these prompts leave removed by `pool_prior`.
    """
    if len(pool_examples) != pool.shape[0]:
        raise ValueError(f"pool has {pool.shape[0]} rows but {len(pool_examples)} examples")
    if k <= 0 or pool.shape[0] == 0:
        return []
    similarity = _cosine(query, pool)
    labels = sorted({example.label for example in pool_examples})
    per_label = max(1, k // len(labels))
    chosen: list[int] = []
    for label in labels:
        rows = [i for i, example in enumerate(pool_examples) if example.label == label]
        rows.sort(key=lambda i: -similarity[i])
        chosen.extend(rows[:per_label])
    chosen.sort(key=lambda i: similarity[i])
    return [pool_examples[i] for i in chosen]


def few_shot_examples(
    query: FloatArray,
    pool: FloatArray,
    pool_examples: Sequence[Example],
    k: int,
) -> list[Example]:
    """Per-label nearest examples when k gives every label at least two, else plain nearest examples.

    Measured with SmolLM2-135M, 4 shots from 200 labeled items: SMS Spam (2 labels) macro-F1 0.89
    per-label vs 0.80 plain; TREC (6 labels, so one example each) 0.52 per-label vs 0.73 plain.
    """
    labels = {example.label for example in pool_examples}
    if labels and k >= 2 * len(labels):
        return nearest_examples_per_label(query, pool, pool_examples, k)
    return nearest_examples(query, pool, pool_examples, k)


def _cosine(query: FloatArray, pool: FloatArray) -> FloatArray:
    norms = np.linalg.norm(pool, axis=1) * max(float(np.linalg.norm(query)), 1e-12)
    similarity: FloatArray = (pool @ query) / np.maximum(norms, 1e-12)
    return similarity
