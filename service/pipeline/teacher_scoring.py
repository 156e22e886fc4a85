"""Score a chunk of items with the teacher: render, fit to the context, score labels, calibrate.

The worker calls `score_items` per chunk. Batch calibration needs a prior from many items, so a typical
step is: `raw = score_items(..., prior=None)`, `prior = batch_prior_of([*recent, *raw])`,
`scores = recalibrate(raw, prior, task)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from service.pipeline import kinds
from service.pipeline.calibration import batch_calibrate, batch_prior, fitted_prior
from service.pipeline.render import (
    RenderedPrompt,
    escape_special,
    few_shot_examples,
    render_prompt,
)
from service.ports import Example, FloatArray, ScoreRequest, TaskDef, Teacher


@dataclass(frozen=True)
class ItemScore:
    raw_probs: tuple[float, ...]
    """Softmax of the label log-likelihoods, in the task's label order."""
    probs: tuple[float, ...]
    """raw_probs with the prior divided out (equal to raw_probs when no prior was given)."""
    label: str
    """The label with the highest calibrated probability."""
    confidence: float
    """That label's calibrated probability."""
    template_sha: str
    prompt_sha: str
    truncated: bool
    """Whether the item's text was cut to fit the teacher's context or max_text_tokens."""


def score_items(
    teacher: Teacher,
    task: TaskDef,
    texts: Sequence[str],
    examples_per_item: Sequence[Sequence[Example]],
    *,
    template_name: str,
    prompts_dir: Path,
    prior: FloatArray | None,
    max_text_tokens: int | None,
) -> list[ItemScore]:
    """One ItemScore per text, in order. prior: a (k,) label prior to divide out, or None for raw probs."""
    if len(texts) != len(examples_per_item):
        raise ValueError(f"{len(texts)} texts but {len(examples_per_item)} example lists")
    if not texts:
        return []
    continuations = kinds.continuations(task)
    fitted = [
        fit_prompt(teacher, task, text, examples, template_name, prompts_dir, max_text_tokens)
        for text, examples in zip(texts, examples_per_item, strict=True)
    ]
    logliks = np.asarray(
        teacher.score([ScoreRequest(prompt.prompt, continuations) for prompt, _ in fitted]), dtype=np.float64
    )
    if logliks.shape != (len(texts), len(continuations)):
        raise ValueError(
            f"teacher returned scores of shape {logliks.shape}, expected {(len(texts), len(continuations))}"
        )
    raw = kinds.column_probs(task, logliks)
    calibrated = raw if prior is None else batch_calibrate(raw, prior)
    names = kinds.columns(task.kind, task.label_names)
    return [
        ItemScore(
            raw_probs=tuple(float(p) for p in raw_row),
            probs=tuple(float(p) for p in row),
            label=names[int(np.argmax(row))],
            confidence=float(np.max(row)),
            template_sha=prompt.template_sha,
            prompt_sha=prompt.prompt_sha,
            truncated=truncated,
        )
        for raw_row, row, (prompt, truncated) in zip(raw, calibrated, fitted, strict=True)
    ]


def batch_prior_of(scores: Sequence[ItemScore]) -> FloatArray:
    """The batch-calibration prior: the mean of the scores' raw probabilities."""
    return batch_prior(np.asarray([score.raw_probs for score in scores], dtype=np.float64))


def recalibrate(scores: Sequence[ItemScore], prior: FloatArray, task: TaskDef) -> list[ItemScore]:
    """The scores with probs, label and confidence recomputed from raw_probs and a new prior."""
    if not scores:
        return []
    calibrated = batch_calibrate(np.asarray([score.raw_probs for score in scores], dtype=np.float64), prior)
    names = kinds.columns(task.kind, task.label_names)
    return [
        replace(
            score,
            probs=tuple(float(p) for p in row),
            label=names[int(np.argmax(row))],
            confidence=float(np.max(row)),
        )
        for score, row in zip(scores, calibrated, strict=True)
    ]


def score_leave_one_out(
    teacher: Teacher,
    task: TaskDef,
    pool: FloatArray,
    pool_examples: Sequence[Example],
    *,
    shots: int,
    template_name: str,
    prompts_dir: Path,
    max_text_tokens: int | None,
    limit: int | None = None,
) -> list[ItemScore]:
    """Raw scores of the first ``limit`` labeled items (all by default), each prompted as a new item would be,
    with its ``few_shot_examples`` drawn from the rest of the pool: what the teacher would have said of them.
    ``pool`` holds their embeddings (n, d). Costs one teacher call per item scored."""
    count = len(pool_examples) if limit is None else min(limit, len(pool_examples))
    examples = []
    for i in range(count):
        others = [j for j in range(len(pool_examples)) if j != i]
        examples.append(few_shot_examples(pool[i], pool[others], [pool_examples[j] for j in others], shots))
    return score_items(
        teacher,
        task,
        [example.text for example in pool_examples[:count]],
        examples,
        template_name=template_name,
        prompts_dir=prompts_dir,
        prior=None,
        max_text_tokens=max_text_tokens,
    )


def pool_prior(
    teacher: Teacher,
    task: TaskDef,
    pool: FloatArray,
    pool_examples: Sequence[Example],
    *,
    shots: int,
    template_name: str,
    prompts_dir: Path,
    max_text_tokens: int | None,
    limit: int = 200,
) -> FloatArray:
    """A (k,) prior fitted on labeled items, for prompts whose examples come from `few_shot_examples`.

    Up to `limit` pool items are scored leave-one-out (`score_leave_one_out`) and `fitted_prior` finds the
    prior that best explains their known labels. Refit when the pool has grown, not per chunk.
    """
    scores = score_leave_one_out(
        teacher,
        task,
        pool,
        pool_examples,
        shots=shots,
        template_name=template_name,
        prompts_dir=prompts_dir,
        max_text_tokens=max_text_tokens,
        limit=limit,
    )
    names = kinds.columns(task.kind, task.label_names)
    gold = [names.index(example.label) for example in pool_examples[: len(scores)]]
    return fitted_prior(np.asarray([s.raw_probs for s in scores], dtype=np.float64), np.asarray(gold))


def fit_prompt(
    teacher: Teacher,
    task: TaskDef,
    text: str,
    examples: Sequence[Example],
    template_name: str,
    prompts_dir: Path,
    max_text_tokens: int | None,
    *,
    answer_tokens: int = 0,
) -> tuple[RenderedPrompt, bool]:
    """The rendered prompt, with the text (and examples) cut to fit, and whether the text was cut.

    Example texts are cut to the same max_text_tokens; if the examples alone overflow the context the
    least similar ones (the first) are dropped. ``answer_tokens`` more are left free for a generated answer.
    """
    budget = teacher.max_prompt_tokens - answer_tokens
    truncated = False
    # Item and example texts are data: none may carry a control token into the prompt.
    special = teacher.special_tokens
    text = escape_special(text, special)
    examples = [Example(escape_special(ex.text, special), ex.label) for ex in examples]
    if max_text_tokens is not None:
        text, truncated = teacher.truncate(text, max_text_tokens)
        examples = [Example(teacher.truncate(ex.text, max_text_tokens)[0], ex.label) for ex in examples]
    examples = list(examples)
    while True:
        overhead = teacher.count_tokens(render_prompt(task, "", examples, template_name, prompts_dir).prompt)
        if overhead < budget or not examples:
            break
        examples = examples[1:]
    # A token or two can merge at the text's edges, so check the real prompt and shrink until it fits.
    room = budget - overhead
    while True:
        text, cut = teacher.truncate(text, max(room, 0))
        truncated = truncated or cut
        rendered = render_prompt(task, text, examples, template_name, prompts_dir)
        if teacher.count_tokens(rendered.prompt) <= budget or not text:
            return rendered, truncated
        room -= 4
