"""`understudy bench teacher`: the teacher's quality and speed on a labeled JSONL/CSV file.

Quality: accuracy and macro-F1 zero-shot and with k nearest-neighbour few-shot examples (MiniLM cosine,
drawn from `pool_size` labeled items), each raw, batch-calibrated (prior = mean predicted distribution
over the scored items) and content-free calibrated (prior = predictions for "N/A", "" and "[MASK]").
Per-label kNN: the nearest examples of each label (see nearest_examples_per_label), raw and batch-calibrated.
The recommended recipe, few_shot_examples (per-label when every label gets two, else plain kNN), raw and
with a prior fitted on the pool scored leave-one-out (pool_prior).
Label order: the zero-shot run again with the labels listed in reverse; the share of items whose label
flips, and the accuracy of the two orders averaged.
Speed: items per second of our batched scoring ("prefix" mode) against the naive way (one request per
item per label) on the same vLLM server and the same prompts, the recommended recipe's; batched runs first
on a cold prefix cache, and naive requests cannot read the cache, so neither borrows from the other. The
server's own counters give each way's prompt tokens per second and prefix-cache hit rate.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from service.bench.report import write_json
from service.datasets import read_labeled
from service.errors import Invalid
from service.pipeline import kinds
from service.pipeline.calibration import batch_calibrate, batch_prior, normalize
from service.pipeline.metrics import classification_report
from service.pipeline.render import (
    default_prompts_dir,
    nearest_examples,
    nearest_examples_per_label,
)
from service.pipeline.teacher_scoring import fit_prompt, pool_prior, score_items
from service.ports import Example, FloatArray, LabelDef, ScoreRequest, TaskDef, Teacher

DEFAULT_INSTRUCTIONS = "Classify the text with one of the labels."

CONTENT_FREE_TEXTS: tuple[str, ...] = ("N/A", "", "[MASK]")
"""Placeholder inputs whose predictions estimate the content-free prior (Zhao et al. 2021), a baseline this bench
reports beside batch calibration; the service does not use it (with kNN prompts it lost to the fitted prior)."""


def content_free_prior(content_free_logliks: FloatArray) -> FloatArray:
    """The (k,) mean distribution the teacher gives placeholder inputs (one row per CONTENT_FREE_TEXTS entry)."""
    return batch_prior(normalize(content_free_logliks))


def _quality(probs: FloatArray, gold: Sequence[str], labels: tuple[str, ...]) -> dict[str, float]:
    predicted = [labels[int(i)] for i in np.argmax(probs, axis=1)]
    report = classification_report(y_true=gold, y_pred=predicted, labels=labels)
    return {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"]}


def _raw_probs(
    teacher: Teacher, task: TaskDef, texts: Sequence[str], examples: Sequence[Sequence[Example]], **kw: Any
) -> FloatArray:
    scores = score_items(teacher, task, texts, examples, prior=None, **kw)
    return np.asarray([s.raw_probs for s in scores], dtype=np.float64)


def _three_ways(raw: FloatArray, free: FloatArray, gold: Sequence[str], labels: tuple[str, ...]) -> dict[str, Any]:
    return {
        "raw": _quality(raw, gold, labels),
        "batch_calibrated": _quality(batch_calibrate(raw, batch_prior(raw)), gold, labels),
        "content_free_calibrated": _quality(batch_calibrate(raw, free), gold, labels),
    }


def _throughput(
    model_dir: Path, cache_dir: Path, vllm_url: str | None, requests: list[ScoreRequest], reference: FloatArray
) -> dict[str, Any]:
    """Batched vs naive speed; reference: the transformers teacher's probabilities for the same requests."""
    from service.backends.teacher_vllm_server import VLLMServerTeacher
    from service.backends.vllm_env import running_server, server_counters

    def measure(url: str, model: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        warm, timed = requests[:8], requests[8:]
        for mode in ("prefix", "naive"):
            teacher = VLLMServerTeacher(url, model, tokenizer_dir=model_dir, mode=mode)
            try:
                teacher.score(warm)
                before = server_counters(url)
                started = time.perf_counter()
                scores = teacher.score(timed)
                elapsed = time.perf_counter() - started
                after = server_counters(url)
            finally:
                teacher.close()
            delta = {name.removeprefix("vllm:"): after[name] - before[name] for name in after}
            queries = delta["prefix_cache_queries_total"]
            out[f"{mode}_items_per_s"] = len(timed) / elapsed
            out[f"{mode}_prompt_tokens_per_s"] = delta["prompt_tokens_total"] / elapsed
            out[f"{mode}_prefix_cache_hit_rate"] = delta["prefix_cache_hits_total"] / queries if queries else 0.0
            if mode == "prefix":
                probs, expected = normalize(np.asarray(scores, dtype=np.float64)), reference[len(warm) :]
                gap = np.abs(probs - expected)
                out["vs_transformers"] = {
                    "top_label_agreement": float(np.mean(probs.argmax(1) == expected.argmax(1))),
                    "max_prob_difference": float(gap.max()),
                    "mean_prob_difference": float(gap.mean()),
                }
        out["ratio"] = out["prefix_items_per_s"] / out["naive_items_per_s"]
        out["items"] = float(len(timed))
        return out

    if vllm_url is not None:
        return {**measure(vllm_url, str(model_dir)), "dtype": "as served"}
    with running_server(model_dir, cache_dir) as server:
        return {**measure(server.base_url, server.model), "dtype": server.dtype}


def run_teacher_bench(
    data: Path,
    text_field: str,
    label_field: str,
    *,
    limit: int = 300,
    seed: int = 0,
    json_out: Path | None = None,
    pool_size: int = 200,
    shots: int = 4,
    template: str = "classify/chatml",
    instructions: str = DEFAULT_INSTRUCTIONS,
    max_text_tokens: int = 256,
    throughput: bool = True,
    throughput_items: int = 256,
    vllm_url: str | None = None,
    cache_dir: Path | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Run the benchmark; returns the results (also written to json_out) with a "table" in markdown.

    The quality runs use the transformers teacher on SmolLM2; the speed run uses a vLLM server at
    vllm_url, or one started from the cached vLLM environment when vllm_url is None.
    """
    from service.backends.embedder_st import SentenceEmbedder
    from service.backends.models import converted_model_dir, default_cache_dir, smollm2_gguf_path
    from service.backends.teacher_transformers import TransformersTeacher

    pairs = read_labeled(data, text_field=text_field, label_field=label_field)
    random.Random(seed).shuffle(pairs)
    pool, held_out = pairs[:pool_size], pairs[pool_size : pool_size + limit]
    if len(held_out) < 2:
        raise Invalid(
            f"{data} has {len(pairs)} labeled rows; the teacher bench takes {pool_size} for its few-shot pool and "
            f"scores up to {limit} more, so it needs at least {pool_size + 2}"
        )
    labels = tuple(sorted({label for _, label in pairs}))
    task = TaskDef(name=data.stem, labels=tuple(LabelDef(name) for name in labels), instructions=instructions)
    texts, gold = [t for t, _ in held_out], [label for _, label in held_out]
    cache = cache_dir or default_cache_dir()
    model_dir = converted_model_dir(smollm2_gguf_path(), cache)
    teacher = TransformersTeacher(model_dir, threads=threads)
    options: dict[str, Any] = {
        "template_name": template,
        "prompts_dir": default_prompts_dir(),
        "max_text_tokens": max_text_tokens,
    }

    embedder = SentenceEmbedder()
    pool_vectors, item_vectors = embedder.embed([t for t, _ in pool]), embedder.embed(texts)
    pool_examples = [Example(text, label) for text, label in pool]
    few_shot = [nearest_examples(v, pool_vectors, pool_examples, shots) for v in item_vectors]
    no_shot: list[list[Example]] = [[] for _ in texts]

    started = time.perf_counter()
    zero = _raw_probs(teacher, task, texts, no_shot, **options)
    zero_s = time.perf_counter() - started
    started = time.perf_counter()
    knn = _raw_probs(teacher, task, texts, few_shot, **options)
    knn_s = time.perf_counter() - started
    free_texts = list(CONTENT_FREE_TEXTS)
    zero_free = content_free_prior(np.log(_raw_probs(teacher, task, free_texts, [[]] * len(free_texts), **options)))
    # kNN prompts differ per item; the content-free prior averages placeholders over 10 items' example sets.
    sample = few_shot[:10]
    knn_free = content_free_prior(
        np.log(
            _raw_probs(teacher, task, free_texts * len(sample), [ex for ex in sample for _ in free_texts], **options)
        )
    )
    per_label = [nearest_examples_per_label(v, pool_vectors, pool_examples, shots) for v in item_vectors]
    started = time.perf_counter()
    balanced = _raw_probs(teacher, task, texts, per_label, **options)
    balanced_s = time.perf_counter() - started
    # The recommended recipe: few_shot_examples (per-label when k >= 2 x labels, else plain kNN) and a
    # prior fitted on the pool scored leave-one-out with the same kind of examples.
    auto, auto_examples = (balanced, per_label) if len(labels) * 2 <= shots else (knn, few_shot)
    started = time.perf_counter()
    prior = pool_prior(teacher, task, pool_vectors, pool_examples, shots=shots, limit=pool_size, **options)
    prior_s = time.perf_counter() - started
    reversed_task = TaskDef(task.name, task.labels[::-1], task.instructions)
    reverse = _raw_probs(teacher, reversed_task, texts, no_shot, **options)[:, ::-1]

    results: dict[str, Any] = {
        "data": str(data),
        "items": len(texts),
        "pool_size": len(pool),
        "shots": shots,
        "labels": list(labels),
        "teacher": teacher.model_name,
        "template": template,
        "zero_shot": _three_ways(zero, zero_free, gold, labels),
        f"knn_{shots}_shot": _three_ways(knn, knn_free, gold, labels),
        f"per_label_knn_{shots}_shot": {
            "raw": _quality(balanced, gold, labels),
            "batch_calibrated": _quality(batch_calibrate(balanced, batch_prior(balanced)), gold, labels),
        },
        f"auto_few_shot_{shots}": {
            "raw": _quality(auto, gold, labels),
            "pool_fitted_prior": _quality(batch_calibrate(auto, prior), gold, labels),
        },
        "pool_fitted_prior": prior.tolist(),
        "label_order": {
            "flip_rate": float(np.mean(np.argmax(zero, 1) != np.argmax(reverse, 1))),
            "reversed_raw": _quality(reverse, gold, labels),
            "order_averaged_raw": _quality((zero + reverse) / 2, gold, labels),
        },
        "transformers_items_per_s": {
            "zero_shot": len(texts) / zero_s,
            f"knn_{shots}_shot": len(texts) / knn_s,
            f"per_label_knn_{shots}_shot": len(texts) / balanced_s,
        },
        "pool_prior_fit_s": prior_s,
    }
    if throughput:
        count = min(throughput_items + 8, len(texts))
        requests = [
            ScoreRequest(
                fit_prompt(teacher, task, text, ex, template, default_prompts_dir(), max_text_tokens)[0].prompt,
                kinds.continuations(task),
            )
            for text, ex in zip(texts[:count], auto_examples[:count], strict=True)
        ]
        results["vllm_throughput"] = _throughput(model_dir, cache, vllm_url, requests, auto[:count])
    results["table"] = markdown_table(results)
    write_json(results, json_out)
    return results


def markdown_table(results: dict[str, Any]) -> str:
    shots = results["shots"]
    lines = [
        f"Teacher {results['teacher']} on {results['data']} ({results['items']} items, pool {results['pool_size']})",
        "",
        "| prompt | calibration | accuracy | macro-F1 |",
        "| --- | --- | --- | --- |",
    ]
    for key, name in (
        ("zero_shot", "zero-shot"),
        (f"knn_{shots}_shot", f"kNN {shots}-shot"),
        (f"per_label_knn_{shots}_shot", f"per-label kNN {shots}-shot"),
        (f"auto_few_shot_{shots}", f"few_shot_examples {shots}-shot"),
    ):
        for way, quality in results[key].items():
            lines.append(
                f"| {name} | {way.replace('_', ' ')} | {quality['accuracy']:.3f} | {quality['macro_f1']:.3f} |"
            )
    order = results["label_order"]
    lines.append(
        f"| zero-shot | labels reversed (flip rate {order['flip_rate']:.2f}) | "
        f"{order['reversed_raw']['accuracy']:.3f} | {order['reversed_raw']['macro_f1']:.3f} |"
    )
    lines.append(
        f"| zero-shot | both orders averaged | {order['order_averaged_raw']['accuracy']:.3f} | "
        f"{order['order_averaged_raw']['macro_f1']:.3f} |"
    )
    speed = results.get("vllm_throughput")
    if speed:
        close = speed["vs_transformers"]
        lines += [
            "",
            f"| vLLM server ({speed['dtype']}), the same few_shot_examples prompts, {speed['items']:.0f} items "
            "| items/s | prompt tokens/s | prefix cache hits |",
            "| --- | --- | --- | --- |",
            *(
                f"| {name} | {speed[f'{mode}_items_per_s']:.2f} | {speed[f'{mode}_prompt_tokens_per_s']:.0f} "
                f"| {speed[f'{mode}_prefix_cache_hit_rate']:.1%} |"
                for mode, name in (
                    ("prefix", "batched (prefix-cached label scoring)"),
                    ("naive", "naive (one request per item per label)"),
                )
            ),
            f"| ratio | {speed['ratio']:.1f}x | | |",
            "",
            f"Batched vLLM against the transformers scorer on these items: the same top label for "
            f"{close['top_label_agreement']:.1%}, probabilities within {close['max_prob_difference']:.3f} "
            f"(mean difference {close['mean_prob_difference']:.4f}).",
        ]
    return "\n".join(lines)
