"""The benchmarks that need the configured teacher and embedder: they build both, split the data, score it and hand
the scores to the simulation. `understudy bench quality` and `bench student` call these and print the table."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from service.backends.factory import make_embedder, make_teacher
from service.bench.knn_teacher import knn_pool_scores, knn_teacher_scores, split_pool
from service.bench.quality import run_quality_bench
from service.bench.report import write_json
from service.bench.student import run_student_bench
from service.bench.student_accepted import AcceptedLabels, accepted_labels, split_held_out
from service.config import Settings
from service.datasets import read_labeled
from service.pipeline.render import check_template
from service.ports import TaskKind


def quality_run(
    settings: Settings,
    *,
    data: Path,
    text_field: str,
    label_field: str,
    epsilon: float,
    delta: float,
    budget_shares: tuple[float, ...],
    reviewer_noise: float,
    seed: int,
    seeds: int,
    limit: int,
    pool: int,
    template: str,
    target_coverage: float | None,
    json_out: Path | None,
    plot: Path | None,
    kind: TaskKind = "single_label",
) -> dict[str, Any]:
    """The confidence filter and its baselines over seeded runs, on the teacher's kNN few-shot scores."""
    pool_pairs, rest = split_pool(
        data,
        text_field=text_field,
        label_field=label_field,
        pool_size=pool,
        seed=seed,
        out_dir=settings.cache_dir / "bench-data",
    )
    check_template(template, settings.prompts_dir)
    embedder, teacher = make_embedder(settings), make_teacher(settings)
    return run_quality_bench(
        rest,
        "text",
        "label",
        teacher_scores=knn_teacher_scores(
            teacher, embedder, pool=pool_pairs, settings=settings, template=template, kind=kind
        ),
        kind=kind,
        budget_shares=budget_shares,
        epsilon=epsilon,
        delta=delta,
        reviewer_noise=reviewer_noise,
        seed=seed,
        seeds=seeds,
        embed=embedder.embed,
        labeled=pool_pairs,
        labeled_scores=knn_pool_scores(
            teacher, embedder, pool=pool_pairs, settings=settings, template=template, kind=kind
        ),
        limit=limit,
        target_coverage=target_coverage,
        name=str(data),
        json_out=json_out,
        plot_out=plot,
    )


def span_quality_run(
    settings: Settings,
    *,
    data: Path,
    text_field: str,
    label_field: str,
    epsilon: float,
    delta: float,
    budget_shares: tuple[float, ...],
    seed: int,
    seeds: int,
    limit: int,
    pool: int,
    json_out: Path | None,
) -> dict[str, Any]:
    """A spans task's review budget, run as the service runs it (bench/quality_spans.py), on the teacher's kNN
    few-shot proposals and LoRA taggers trained per seed."""
    from service.backends.span_student import SPAN_TRAIN_CONFIG, SpanStudent, SpanTrainer
    from service.bench.quality_spans import cached_proposals, proposals_key, run_span_quality_bench
    from service.bench.span_student import span_labels
    from service.pipeline import span_sets
    from service.pipeline.render import few_shot_examples
    from service.pipeline.span_answers import propose_spans
    from service.ports import Example, LabelDef, TaskDef, TrainExample

    raw = read_labeled(data, text_field=text_field, label_field=label_field)
    labels = span_labels(raw)
    pairs = list(dict.fromkeys((text, span_sets.canonical(given, text=text, labels=labels)) for text, given in raw))
    random.Random(seed).shuffle(pairs)
    known, items = pairs[:pool], pairs[pool : pool + limit]
    task = TaskDef(
        name="bench-spans",
        labels=tuple(LabelDef(label) for label in labels),
        instructions="Find the named entities in the post.",
        template="spans/chatml",
        kind="spans",
    )
    check_template(task.template, settings.prompts_dir)
    embedder, teacher = make_embedder(settings), make_teacher(settings)
    precision: list[str] = []

    def propose(texts: Sequence[str]) -> list[tuple[str, float]]:
        pool_embeddings = embedder.embed([text for text, _ in known])
        item_embeddings = embedder.embed(texts)
        examples = [Example(text, label) for text, label in known]
        answers: list[tuple[str, float]] = []
        for start in tqdm(range(0, len(texts), 16), desc="teacher proposals", unit="batch"):
            batch = range(start, min(start + 16, len(texts)))
            shots = [
                few_shot_examples(item_embeddings[i], pool_embeddings, examples, settings.teacher.few_shot)
                for i in batch
            ]
            proposed = propose_spans(
                teacher,
                task,
                [texts[i] for i in batch],
                shots,
                prompts_dir=settings.prompts_dir,
                max_text_tokens=settings.teacher.max_text_tokens,
            )
            answers.extend((proposal.name, proposal.confidence) for proposal, _, _ in proposed)
        return answers

    def train(
        examples: Sequence[TrainExample], run: int, folder: Path
    ) -> Callable[[Sequence[str]], list[tuple[str, float]]]:
        SpanTrainer().train(examples, labels, folder, replace(SPAN_TRAIN_CONFIG, seed=run))
        tagger = SpanStudent.load(folder, precision=settings.encoder_precision)
        precision[:] = [tagger.precision]
        return tagger.predict_spans

    key = proposals_key([text for text, _ in items], known, teacher.model_name, task.template)
    result = run_span_quality_bench(
        items,
        known,
        labels,
        propose=cached_proposals(settings.cache_dir / "bench-quality", key, propose),
        train_tagger=train,
        budget_shares=budget_shares,
        epsilon=epsilon,
        delta=delta,
        seed=seed,
        seeds=seeds,
        name=str(data),
        json_out=None,
    )
    result["tagger_precision"] = precision[0] if precision else ""
    write_json(result, json_out)
    return result


def student_run(
    settings: Settings,
    *,
    data: Path,
    text_field: str,
    label_field: str,
    seed: int,
    with_teacher: bool,
    test_size: int,
    pool: int,
    audit: int,
    candidates: int,
    epsilon: float,
    delta: float,
    json_out: Path | None,
    plot: Path | None,
    kind: TaskKind = "single_label",
) -> dict[str, Any]:
    """The student's learning curve, speed and cost; with the teacher, also trained on what a labeling run with
    the real teacher accepts (``pool`` reviewed items as few-shot examples, ``audit`` to certify the threshold,
    ``candidates`` for the filter to accept), beside the teacher's own score."""
    if kind == "spans":
        from service.bench.span_student import run_span_student_bench

        return run_span_student_bench(
            data, text_field, label_field, seed=seed, test_size=test_size, json_out=json_out, plot_out=plot
        )
    accepted: AcceptedLabels | None = None
    if with_teacher:
        pairs = read_labeled(data, text_field=text_field, label_field=label_field)
        held_out, rest = split_held_out(pairs, test_size=test_size, seed=seed)
        reviewed, to_audit = rest[:pool], rest[pool : pool + audit]
        model, embedder = make_teacher(settings), make_embedder(settings)
        accepted = accepted_labels(
            pool=reviewed,
            audit=to_audit,
            machine=rest[pool + audit : pool + audit + candidates],
            held_out=held_out,
            label_names=tuple(sorted({label for _, label in pairs})),
            scores=knn_teacher_scores(model, embedder, pool=reviewed, settings=settings),
            uncached_scores=knn_teacher_scores(model, embedder, pool=reviewed, settings=settings, cache=False),
            epsilon=epsilon,
            delta=delta,
        )
    return run_student_bench(
        data,
        text_field,
        label_field,
        seed=seed,
        test_size=test_size,
        accepted=accepted,
        json_out=json_out,
        plot_out=plot,
        kind=kind,
    )
