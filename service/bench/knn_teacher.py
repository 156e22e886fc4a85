"""The real teacher as the benchmarks use it: SmolLM2 scoring with four nearest labeled examples per item, drawn
from a labeled pool kept out of the evaluated items, cached on disk by content. As in the worker
(service.jobs.scoring), few-shot scores stay raw: batch calibration helps zero-shot prompts only, and on SMS Spam
it took per-label kNN 4-shot accuracy from 0.95 to 0.87 (bench/results/teacher_sms_spam.json)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from service.bench.quality import LabeledScores, TeacherScores, cached_scores, content_key
from service.config import Settings
from service.datasets import read_labeled, write_jsonl
from service.pipeline.calibration import batch_calibrate, batch_prior
from service.pipeline.render import few_shot_examples
from service.pipeline.teacher_scoring import score_items, score_leave_one_out
from service.ports import Embedder, Example, FloatArray, LabelDef, TaskDef, TaskKind, Teacher

CHUNK = 32


def split_pool(
    data: Path, *, text_field: str, label_field: str, pool_size: int, seed: int, out_dir: Path
) -> tuple[list[tuple[str, str]], Path]:
    """A seeded labeled pool for few-shot examples, and a JSONL of the remaining items to evaluate on."""
    pairs = list(dict.fromkeys(read_labeled(data, text_field=text_field, label_field=label_field)))
    random.Random(seed).shuffle(pairs)
    name = hashlib.sha256(f"{data}:{seed}:{pool_size}".encode()).hexdigest()[:12]
    return pairs[:pool_size], write_jsonl(pairs[pool_size:], out_dir / f"eval-{name}.jsonl")


def knn_teacher_scores(
    teacher: Teacher,
    embedder: Embedder,
    *,
    pool: Sequence[tuple[str, str]],
    settings: Settings,
    template: str = "classify/chatml",
    shots: int = 4,
    instructions: str = "Classify the text.",
    cache: bool = True,
    kind: TaskKind = "single_label",
) -> TeacherScores:
    """Scores of the teacher with ``shots`` nearest examples from ``pool`` per item (batch-calibrated when there are
    no examples); cached on disk by content unless ``cache`` is false (to time the teacher)."""

    def scores(texts: Sequence[str], names: tuple[str, ...]) -> FloatArray:
        pool_key = hashlib.sha256("\n".join(f"{t}\t{label}" for t, label in pool).encode()).hexdigest()[:12]
        key = content_key(texts, list(names), f"{teacher.model_name}:{template}:{shots}:{pool_key}:raw")

        def compute() -> FloatArray:
            task = TaskDef("bench", tuple(LabelDef(name) for name in names), instructions, template=template, kind=kind)
            examples = [Example(text, label) for text, label in pool]
            pool_embeddings = embedder.embed([text for text, _ in pool])
            embeddings = embedder.embed(texts)
            raw: list[tuple[float, ...]] = []
            for start in tqdm(range(0, len(texts), CHUNK), desc="teacher scoring", unit="chunk"):
                chunk = range(start, min(start + CHUNK, len(texts)))
                shots_per_item = [few_shot_examples(embeddings[i], pool_embeddings, examples, shots) for i in chunk]
                scored = score_items(
                    teacher,
                    task,
                    [texts[i] for i in chunk],
                    shots_per_item,
                    template_name=template,
                    prompts_dir=settings.prompts_dir,
                    prior=None,
                    max_text_tokens=settings.teacher.max_text_tokens,
                )
                raw.extend(score.raw_probs for score in scored)
            probs = np.asarray(raw, dtype=np.float64)
            if shots and pool:
                return probs
            calibrated: FloatArray = batch_calibrate(probs, batch_prior(probs))
            return calibrated

        return cached_scores(settings.cache_dir / "bench-scores", key, compute) if cache else compute()

    return scores


def knn_pool_scores(
    teacher: Teacher,
    embedder: Embedder,
    *,
    pool: Sequence[tuple[str, str]],
    settings: Settings,
    template: str = "classify/chatml",
    shots: int = 4,
    instructions: str = "Classify the text.",
    kind: TaskKind = "single_label",
) -> LabeledScores:
    """The teacher's raw scores of the pool items themselves, each with ``shots`` nearest examples from the rest of
    the pool (leave-one-out): what the service holds for items it has reviewed. Cached on disk by content."""

    def scores(names: tuple[str, ...]) -> FloatArray:
        texts = [text for text, _ in pool]
        key = content_key(texts, list(names), f"{teacher.model_name}:{template}:{shots}:pool-loo")

        def compute() -> FloatArray:
            task = TaskDef("bench", tuple(LabelDef(name) for name in names), instructions, template=template, kind=kind)
            scored = score_leave_one_out(
                teacher,
                task,
                embedder.embed(texts),
                [Example(text, label) for text, label in pool],
                shots=shots,
                template_name=template,
                prompts_dir=settings.prompts_dir,
                max_text_tokens=settings.teacher.max_text_tokens,
            )
            return np.asarray([score.raw_probs for score in scored], dtype=np.float64)

        return cached_scores(settings.cache_dir / "bench-scores", key, compute)

    return scores
