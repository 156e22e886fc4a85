"""`understudy bench student --kind spans`: the LoRA span student beside full fine-tuning of the same encoder.

A student (MiniLM, LoRA, a BIO tag per token) is trained on N gold span sets for each N in ``train_sizes`` and
scored on the same held-out texts by entity-level exact match (seqeval's convention: micro-F1 over spans). Beside
the largest student, the baseline a team would try first: transformers' token-classification recipe, every weight
of the same encoder fine-tuned by ``Trainer`` (AdamW, learning rate 5e-5, weight decay 0.01, batch 16, linear
decay), on the same labels, tags and held-out texts, with its training time.
"""

from __future__ import annotations

import json
import resource
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from service.bench.report import write_json
from service.bench.student import measure_speed, plot_learning_curve
from service.bench.student_accepted import split_held_out
from service.datasets import read_labeled
from service.pipeline import span_sets
from service.ports import Precision, TrainConfig, TrainExample

BASELINE_LEARNING_RATE = 5e-5
BASELINE_BATCH_SIZE = 16


def span_labels(pairs: Sequence[tuple[str, str]]) -> tuple[str, ...]:
    """The labels a file's span sets use, sorted."""
    return tuple(sorted({str(span["label"]) for _, given in pairs for span in json.loads(given)}))


def run_span_student_bench(
    data: Path,
    text_field: str,
    label_field: str,
    *,
    train_sizes: Sequence[int] = (200, 400, 800),
    test_size: int = 500,
    seed: int = 0,
    epochs: int = TrainConfig.epochs,
    baseline_epochs: int = TrainConfig.epochs,
    precision: Precision = "auto",
    json_out: Path | None = None,
    plot_out: Path | None = None,
) -> dict[str, Any]:
    """Run the benchmark and return its results (also written to ``json_out``, the curve to ``plot_out``)."""
    import torch

    from service.backends.span_student import SPAN_TRAIN_CONFIG, SpanStudent, SpanTrainer

    raw = read_labeled(data, text_field=text_field, label_field=label_field)
    labels = span_labels(raw)
    pairs = [(text, span_sets.canonical(given, text=text, labels=labels)) for text, given in raw]
    held_out, rest = split_held_out(pairs, test_size=test_size, seed=seed)
    pool = [TrainExample(text, label) for text, label in rest]
    texts, truth = [t for t, _ in held_out], [label for _, label in held_out]
    curve: list[dict[str, Any]] = []
    student: SpanStudent | None = None
    with tempfile.TemporaryDirectory(prefix="span-bench-") as scratch:
        for n in sorted({min(n, len(pool)) for n in train_sizes}):
            started = time.perf_counter()
            result = SpanTrainer().train(
                pool[:n], labels, Path(scratch) / f"n{n}", replace(SPAN_TRAIN_CONFIG, epochs=epochs, seed=seed)
            )
            train_s = time.perf_counter() - started
            student = SpanStudent.load(result.path, precision=precision)
            report = span_sets.entity_report(
                y_true=truth, y_pred=[name for name, _ in student.predict_spans(texts)], labels=labels
            )
            curve.append(
                {
                    "n_train": n,
                    "micro_f1": report.get("micro_f1", 0.0),
                    "macro_f1": report["macro_f1"],
                    "accuracy": report["accuracy"],
                    "per_label_f1": {label: scores["f1"] for label, scores in report["per_class"].items()},
                    "epochs_run": result.epochs_run,
                    "train_s": train_s,
                }
            )
        if student is None:
            raise ValueError("no training sizes to run")
        speed = measure_speed(student.predict_spans, texts)
        baseline = _full_fine_tune(
            pool[: curve[-1]["n_train"]], held_out, labels, Path(scratch) / "baseline", baseline_epochs, seed
        )
    results: dict[str, Any] = {
        "data": str(data),
        "kind": "spans",
        "labels": list(labels),
        "trained_on": "gold span sets",
        "test_size": len(held_out),
        "seed": seed,
        "precision": student.precision,
        "curve": curve,
        "student": {**speed, "train_s": curve[-1]["train_s"]},
        "baseline": baseline,
        "student_f1": curve[-1]["micro_f1"],
        "baseline_f1": baseline["micro_f1"],
        "student_items_per_s": speed["items_per_s"],
        "train_time_ratio": curve[-1]["train_s"] / baseline["train_s"],
        "f1": "entity micro-F1 (exact match)",
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "machine": {"torch_threads": torch.get_num_threads()},
    }
    results["table"] = span_student_table(results)
    write_json(results, json_out)
    if plot_out is not None:
        plot_learning_curve(results, plot_out)
    return results


def _full_fine_tune(
    train: Sequence[TrainExample],
    held_out: Sequence[tuple[str, str]],
    labels: tuple[str, ...],
    out_dir: Path,
    epochs: int,
    seed: int,
) -> dict[str, Any]:
    """transformers' token-classification recipe on the same encoder, tags and labels; scored like the student."""
    import torch
    from transformers import DataCollatorForTokenClassification, Trainer, TrainingArguments

    from service.backends.minilm import load_tokenizer, minilm_path
    from service.backends.span_student import decode_texts, encode, tag_model

    tokenizer = load_tokenizer(minilm_path())
    encoded = encode(tokenizer, [e.text for e in train], [span_sets.members(e.label) for e in train], labels)
    rows = [{"input_ids": ids, "labels": tags} for ids, tags in zip(encoded.token_ids, encoded.tags, strict=True)]
    model = tag_model(minilm_path(), labels)
    arguments = TrainingArguments(
        output_dir=str(out_dir),
        learning_rate=BASELINE_LEARNING_RATE,
        per_device_train_batch_size=BASELINE_BATCH_SIZE,
        num_train_epochs=epochs,
        weight_decay=0.01,
        save_strategy="no",
        report_to=[],
        seed=seed,
        use_cpu=True,
        disable_tqdm=True,
        logging_strategy="no",
    )
    started = time.perf_counter()
    Trainer(
        model=model, args=arguments, train_dataset=rows, data_collator=DataCollatorForTokenClassification(tokenizer)
    ).train()
    train_s = time.perf_counter() - started
    with torch.inference_mode():
        predicted = decode_texts(model, tokenizer, [text for text, _ in held_out], labels)
    report = span_sets.entity_report(
        y_true=[label for _, label in held_out], y_pred=[name for name, _ in predicted], labels=labels
    )
    return {
        "model": "full fine-tuning of MiniLM (transformers Trainer, token classification)",
        "n_train": len(train),
        "epochs": epochs,
        "micro_f1": report.get("micro_f1", 0.0),
        "macro_f1": report["macro_f1"],
        "accuracy": report["accuracy"],
        "train_s": train_s,
    }


def _cell(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def span_student_table(results: dict[str, Any]) -> str:
    """The learning curve and the comparison with full fine-tuning as markdown."""
    lines = [
        "| N train | entity micro-F1 | macro-F1 | exact-set accuracy | epochs | train s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["curve"]:
        cells = [row["n_train"], row["micro_f1"], row["macro_f1"], row["accuracy"], row["epochs_run"]]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + f" | {row['train_s']:.0f} |")
    baseline, last = results["baseline"], results["curve"][-1]
    lines += [
        "",
        "| model | entity micro-F1 | exact-set accuracy | train s | items/s |",
        "|---|---:|---:|---:|---:|",
        f"| LoRA student ({last['n_train']} labels) | {_cell(last['micro_f1'])} | {_cell(last['accuracy'])} | "
        f"{last['train_s']:.0f} | {results['student_items_per_s']:.0f} |",
        f"| {baseline['model']} | {_cell(baseline['micro_f1'])} | {_cell(baseline['accuracy'])} | "
        f"{baseline['train_s']:.0f} | – |",
    ]
    return "\n".join(lines)
