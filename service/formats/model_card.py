"""The model card (README.md) of an exported student: what it labels, what it learned from, how it did on held-out
human gold beside the teacher, its certified confidence threshold, and how to run it without this project."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

USAGE = {
    "hf": """```python
from transformers import pipeline

classify = pipeline("text-classification", model="{folder}")
print(classify("{example}", truncation=True))  # [{{'label': ..., 'score': ...}}]
```

`truncation=True` cuts a text at {max_length} tokens, as the student was trained and evaluated. Exact one text at
a time (the pipeline's default, shown) and only then: the head averages over the padded length, so padded batches
give wrong scores; use the ONNX export for batches.""",
    "onnx": """```python
import json, numpy as np, onnxruntime
from transformers import AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("{folder}")
session = onnxruntime.InferenceSession("{folder}/model.onnx")
labels = json.load(open("{folder}/onnx_config.json"))["labels"]
batch = tokenizer(["{example}"], padding=True, truncation=True, max_length={max_length}, return_tensors="np")
logits = session.run(["logits"], {{"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}})[0]
print(labels[int(logits[0].argmax())])
```

`model.int8.onnx` is the same model with int8 weights (per-channel dynamic quantization): about twice as fast on
a CPU, with probabilities that can move by about 0.1 and the top label kept on 99.9% of SMS Spam messages;
the certified threshold above was certified for the exact model.""",
}


SPANS_USAGE = """```python
from transformers import pipeline

tag = pipeline("token-classification", model="{folder}", aggregation_strategy="simple")
print(tag("{example}"))  # [{{'entity_group': ..., 'start': ..., 'end': ..., 'word': ..., 'score': ...}}]
```

Each entity is a run of sub-word tokens tagged `B-<label>` then `I-<label>` (BIO), its `start` and `end`
character offsets into the text; texts are cut at {max_length} tokens, as the student was trained and evaluated."""

SPANS = """This is an entity tagger (`BertForTokenClassification`): every sub-word token gets one of `O`, `B-<label>`,
`I-<label>`, and a run of a label's tokens is one entity, from its first token's first character to its last token's
last. The confidence of a text's whole span set, what the threshold below applies to, is the product over its tokens
of each token's top tag probability; a set is right only when every span (start, end and label) is."""

MULTI_LABEL = """This is a multi-label model (`problem_type` `multi_label_classification`): each label gets its own
sigmoid score and applies when that score is over 0.5 (each label's cut, chosen for F1 on the validation split, is
folded into the head's bias); a text may have none. The confidence of a text's whole label set is the product over
labels of max(score, 1 - score): that is what the threshold below applies to, and a set is right only when every
label is. With the pipeline, ask for every label's score: `classify(text, top_k=None, truncation=True)`."""


def model_card(
    *,
    task: str,
    kind: str,
    version: str,
    fmt: str,
    labels: Sequence[str],
    metrics: Mapping[str, Any],
    n_examples: int,
    trained_utc: str,
    exported_utc: str,
    epsilon: float,
    delta: float,
    max_length: int,
) -> str:
    """Markdown; figures the student was registered without (older versions) are said to be unrecorded."""
    sources = metrics.get("train_sources")
    made_of = (
        ", ".join(f"{count} {source}" for source, count in sorted(sources.items()))
        if isinstance(sources, Mapping)
        else "sources not recorded"
    )
    lines = [
        f"# {task}: student {version}",
        "",
        *(
            [
                "An entity tagger distilled by Understudy: all-MiniLM-L6-v2 with its LoRA adapter merged and a linear",
                "tag classifier on every token. It needs nothing from Understudy to run.",
            ]
            if kind == "spans"
            else [
                "A text classifier distilled by Understudy: all-MiniLM-L6-v2 with its LoRA adapter merged, mean",
                "pooling over the tokens, and a linear head. It needs nothing from Understudy to run.",
            ]
        ),
        "",
        f"- Labels: {', '.join(f'`{label}`' for label in labels)}",
        f"- Trained on {n_examples} labeled texts ({made_of} labels), {trained_utc}",
        f"- Teacher it was distilled from: {metrics.get('teacher_model', 'not recorded')}",
        f"- Exported {exported_utc} as `{fmt}`; texts are cut to {max_length} tokens",
        "",
        "## Use",
        "",
        (SPANS_USAGE if kind == "spans" else USAGE[fmt]).format(
            folder="path/to/this/folder", example="your text here", max_length=max_length
        ),
        "",
        *([MULTI_LABEL, ""] if kind == "multi_label" else []),
        *([SPANS, ""] if kind == "spans" else []),
        *_evaluation(metrics),
        "",
        *_threshold(metrics, epsilon=epsilon, delta=delta),
        "",
    ]
    return "\n".join(lines)


def _evaluation(metrics: Mapping[str, Any]) -> list[str]:
    student, teacher = metrics.get("student"), metrics.get("teacher")
    if not isinstance(student, Mapping):
        return ["## Evaluation", "", "No gold evaluation was recorded."]
    lines = [
        f"## Evaluation on {student.get('n', 0)} held-out human labels",
        "",
        "| label | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for label, scores in student.get("per_class", {}).items():
        figures = " | ".join(f"{scores[key]:.3f}" for key in ("precision", "recall", "f1"))
        lines.append(f"| {label} | {figures} | {scores['support']} |")
    accuracy = "Exact-set accuracy" if "micro_f1" in student else "Accuracy"
    if metrics.get("gate_metric") == "micro_f1":
        lines[0] += " (entity-level exact match: a span is a hit when its start, end and label are right)"
    lines += ["", f"{accuracy} {student['accuracy']:.3f}, macro-F1 {student['macro_f1']:.3f}"]
    if "micro_f1" in student:
        lines[-1] += f", micro-F1 {student['micro_f1']:.3f}"
    if "ece" in student:
        lines[-1] += f", expected calibration error {student['ece']:.3f}"
    if isinstance(teacher, Mapping):
        lines[-1] += (
            f"; the teacher on the same items: accuracy {teacher['accuracy']:.3f}, macro-F1 {teacher['macro_f1']:.3f}"
        )
    lines[-1] += "."
    return lines


def _threshold(metrics: Mapping[str, Any], *, epsilon: float, delta: float) -> list[str]:
    bound = metrics.get("threshold_error_bound")
    lines = ["## Confidence threshold", ""]
    if bound is None:
        lines.append(
            f"No threshold was certified at epsilon {epsilon} (too few sampled gold labels, or too many errors): "
            "in the service every text it labels goes on to the teacher."
        )
    else:
        lines.append(
            f"Labels with a top probability of at least {metrics['threshold']:.4f} were certified to be wrong at most "
            f"{bound:.1%} of the time (epsilon {epsilon}, with probability at least {1 - delta:.0%}), on "
            f"{metrics.get('threshold_certified_on', 'an unrecorded number of')} sampled gold labels (Clopper-Pearson, "
            "Learn-then-Test). Below it, send the text to a person or a larger model."
        )
    return lines
