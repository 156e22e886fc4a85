"""A trained student as a standard model folder that needs no code from this project.

- ``hf``: a transformers folder that ``pipeline("text-classification", model=DIR)`` loads. MiniLM is a BERT
  encoder, but BERT's sequence-classification head reads the [CLS] token through a pooler, while the student
  averages every token (as sentence-transformers does). XLM's encoder has BERT's layout (post-norm attention and
  feed-forward blocks, exact GELU) and its classification head can average the tokens (``summary_type="mean"``),
  so the merged weights are copied into an ``XLMForSequenceClassification``: BERT's token-type embedding (always
  type 0) is folded into the position embeddings, and the [PAD] embedding is zeroed because XLM adds the word
  embedding of the token-type id (0, [PAD]) to every token. XLM averages over the padded length, so it is exact
  one text at a time (the pipeline's default) and only then: padded batches give wrong probabilities.
- ``onnx``: the same network exported with ``torch.onnx``: inputs ``input_ids`` and ``attention_mask`` (int64),
  output ``logits``; the mean is over the real tokens, so it is exact in batches too. Beside it, ``model.int8.onnx``
  is the same graph with its weights quantized to int8 by onnxruntime (dynamic quantization: the fast one on a
  CPU, at a small cost in agreement that the export test bounds).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from transformers import PreTrainedModel, XLMConfig, XLMForSequenceClassification

from service.backends.span_student import SpanStudent
from service.backends.student_lora import LoraStudent
from service.backends.student_meta import StudentMeta
from service.backends.student_model import MiniLMClassifier
from service.pipeline import label_sets
from service.ports import FloatArray, StudentExportFormat, TaskKind

ONNX_FILE = "model.onnx"
ONNX_INT8_FILE = "model.int8.onnx"
ONNX_CONFIG = "onnx_config.json"
OPSET = 17
ProblemType = Literal["single_label_classification", "multi_label_classification"]
PROBLEM_TYPES: dict[TaskKind, ProblemType] = {
    "single_label": "single_label_classification",
    "multi_label": "multi_label_classification",
}
"""transformers' name for how logits become probabilities (softmax, or a sigmoid per label), in config.json and
onnx_config.json: each label's threshold is folded into the head, so a label applies when its score is over 0.5."""


def export_student(student_dir: Path, out: Path, *, fmt: StudentExportFormat, card: str) -> None:
    """Write the student saved in ``student_dir`` to the folder ``out`` in ``fmt``, with ``card`` as README.md."""
    if StudentMeta.from_pretrained(student_dir).kind == "spans":
        _export_tagger(student_dir, out, fmt=fmt, card=card)
        return
    student = LoraStudent.load(student_dir, precision="float32")
    network = student.network
    if not isinstance(network, MiniLMClassifier):
        raise TypeError(f"{student_dir}: not a MiniLM student")
    out.mkdir(parents=True, exist_ok=True)
    labels = student.labels
    tokenizer = student.tokenizer
    # truncation=True then cuts texts where the service's student does (the encoder stops at 512 positions anyway).
    tokenizer.model_max_length = student.meta.max_length
    if fmt == "hf":
        _as_xlm(network, labels, pad_id=int(tokenizer.pad_token_id), kind=student.meta.kind).save_pretrained(str(out))
    else:
        _to_onnx(network, tokenizer, out / ONNX_FILE)
        _quantize(out / ONNX_FILE, out / ONNX_INT8_FILE)
        config = {
            "labels": list(labels),
            "models": {"float32": ONNX_FILE, "int8": ONNX_INT8_FILE},
            "inputs": ["input_ids", "attention_mask"],
            "output": "logits",
            "problem_type": PROBLEM_TYPES[student.meta.kind],
            "max_length": student.meta.max_length,
        }
        (out / ONNX_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    tokenizer.save_pretrained(str(out))
    (out / "README.md").write_text(card)


def _export_tagger(student_dir: Path, out: Path, *, fmt: StudentExportFormat, card: str) -> None:
    """A span student is already transformers' BertForTokenClassification with its BIO tags as labels: saved as
    it is, ``pipeline("token-classification", aggregation_strategy="simple")`` reads the same spans from it."""
    if fmt != "hf":
        raise ValueError("a spans task's student exports as hf (a token-classification model) only")
    tagger = SpanStudent.load(student_dir, precision="float32")
    out.mkdir(parents=True, exist_ok=True)
    tagger.network.save_pretrained(str(out))
    tagger.tokenizer.model_max_length = tagger.meta.max_length
    tagger.tokenizer.save_pretrained(str(out))
    (out / "README.md").write_text(card)


def _as_xlm(network: MiniLMClassifier, labels: tuple[str, ...], *, pad_id: int, kind: TaskKind) -> PreTrainedModel:
    bert: Any = network.encoder
    source = bert.config
    config = XLMConfig(
        vocab_size=source.vocab_size,
        emb_dim=source.hidden_size,
        n_layers=source.num_hidden_layers,
        n_heads=source.num_attention_heads,
        dropout=0.0,
        attention_dropout=0.0,
        gelu_activation=True,
        sinusoidal_embeddings=False,
        causal=False,
        asm=False,
        n_langs=1,
        use_lang_emb=False,
        max_position_embeddings=source.max_position_embeddings,
        layer_norm_eps=source.layer_norm_eps,
        summary_type="mean",
        summary_use_proj=True,
        summary_activation=None,
        summary_proj_to_labels=True,
        summary_first_dropout=0.0,
        is_encoder=True,
        problem_type=PROBLEM_TYPES[kind],
        **_untyped(labels, pad_id),
    )
    if source.intermediate_size != 4 * source.hidden_size or source.hidden_act != "gelu":
        raise ValueError("only encoders with XLM's feed-forward (4 x hidden, exact GELU) can be exported as hf")
    model: Any = XLMForSequenceClassification(config)  # type: ignore[no-untyped-call]
    model.eval()
    weights = {name: tensor.detach().float() for name, tensor in bert.state_dict().items()}
    xlm = model.transformer
    with torch.no_grad():
        xlm.embeddings.weight.copy_(weights["embeddings.word_embeddings.weight"])
        xlm.embeddings.weight[pad_id].zero_()
        xlm.position_embeddings.weight.copy_(
            weights["embeddings.position_embeddings.weight"] + weights["embeddings.token_type_embeddings.weight"][0]
        )
        _copy_norm(xlm.layer_norm_emb, weights, "embeddings.LayerNorm")
        for i in range(source.num_hidden_layers):
            layer = f"encoder.layer.{i}."
            attention = xlm.attentions[i]
            for mine, theirs in (
                ("q_lin", "attention.self.query"),
                ("k_lin", "attention.self.key"),
                ("v_lin", "attention.self.value"),
                ("out_lin", "attention.output.dense"),
            ):
                _copy_linear(getattr(attention, mine), weights, layer + theirs)
            _copy_norm(xlm.layer_norm1[i], weights, layer + "attention.output.LayerNorm")
            _copy_linear(xlm.ffns[i].lin1, weights, layer + "intermediate.dense")
            _copy_linear(xlm.ffns[i].lin2, weights, layer + "output.dense")
            _copy_norm(xlm.layer_norm2[i], weights, layer + "output.LayerNorm")
        model.sequence_summary.summary.weight.copy_(network.head.weight)
        model.sequence_summary.summary.bias.copy_(network.head.bias)
    result: PreTrainedModel = model
    return result


def _untyped(labels: tuple[str, ...], pad_id: int) -> dict[str, Any]:
    """XLMConfig settings its stubs do not declare: the padding id, and the label names the pipeline answers
    with (instead of LABEL_0, LABEL_1, ...)."""
    return {
        "pad_index": pad_id,
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {label: i for i, label in enumerate(labels)},
    }


def _copy_linear(target: torch.nn.Linear, weights: dict[str, torch.Tensor], prefix: str) -> None:
    target.weight.copy_(weights[prefix + ".weight"])
    target.bias.copy_(weights[prefix + ".bias"])


def _copy_norm(target: torch.nn.LayerNorm, weights: dict[str, torch.Tensor], prefix: str) -> None:
    target.weight.copy_(weights[prefix + ".weight"])
    target.bias.copy_(weights[prefix + ".bias"])


def _to_onnx(network: MiniLMClassifier, tokenizer: Any, path: Path) -> None:
    sample = tokenizer(["an example", "a longer example text"], return_tensors="pt", padding=True)
    torch.onnx.export(
        network.eval(),
        (sample["input_ids"], sample["attention_mask"]),
        str(path),
        input_names=["input_ids", "attention_mask"],
        output_names=["logits"],
        dynamic_axes={
            "input_ids": {0: "batch", 1: "tokens"},
            "attention_mask": {0: "batch", 1: "tokens"},
            "logits": {0: "batch"},
        },
        opset_version=OPSET,
        dynamo=False,  # the TorchScript exporter: the dynamo one needs onnxscript, which nothing else here does
    )


def _quantize(model: Path, out: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Per-channel scales: per-tensor ones moved SMS Spam probabilities by up to 0.42, per-channel by 0.13.
    quantize_dynamic(str(model), str(out), weight_type=QuantType.QInt8, per_channel=True)


def exported_scorer(
    folder: Path, fmt: StudentExportFormat, *, batch_size: int, onnx_file: str = ONNX_FILE
) -> Callable[[Sequence[str]], FloatArray]:
    """Probabilities of texts from an exported folder, as a user of the export would get them: onnxruntime on
    ``onnx_file`` with the saved tokenizer in batches of texts of similar length, or the transformers pipeline
    (``batch_size`` 1 is its exact mode). Columns as the service's student gives them (a multi-label export's
    per-label scores joined into label sets). For benchmarks and the export test."""
    from transformers import AutoTokenizer, pipeline

    if fmt == "onnx":
        import onnxruntime

        tokenizer: Any = AutoTokenizer.from_pretrained(str(folder))
        session = onnxruntime.InferenceSession(str(folder / onnx_file), providers=["CPUExecutionProvider"])
        config = json.loads((folder / ONNX_CONFIG).read_text())
        max_length = int(config["max_length"])
        multi = config.get("problem_type") == PROBLEM_TYPES["multi_label"]

        def run_onnx(texts: Sequence[str]) -> FloatArray:
            # Batches of similar length, as the service batches its student: padding costs as much as text.
            order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
            probs = np.zeros((len(texts), 0))
            for start in range(0, len(texts), batch_size):
                chosen = order[start : start + batch_size]
                encoded = tokenizer(
                    [texts[i] for i in chosen],
                    padding=True,
                    truncation=True,
                    max_length=max_length,
                    return_tensors="np",
                )
                feed = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
                logits = np.asarray(session.run(["logits"], feed)[0], dtype=np.float64)
                batch = label_sets.set_probs(1 / (1 + np.exp(-logits))) if multi else _softmax(logits)
                if probs.shape[1] == 0:
                    probs = np.zeros((len(texts), batch.shape[1]))
                probs[chosen] = batch
            return probs

        return run_onnx
    classify: Any = pipeline("text-classification", model=str(folder), top_k=None)
    id2label = classify.model.config.id2label
    names = [id2label[i] for i in range(len(id2label))]
    multi_hf = classify.model.config.problem_type == PROBLEM_TYPES["multi_label"]

    def run_hf(texts: Sequence[str]) -> FloatArray:
        answers = classify(list(texts), batch_size=batch_size, truncation=True)
        scores = np.asarray(
            [[{d["label"]: d["score"] for d in a}[n] for n in names] for a in answers], dtype=np.float64
        )
        return label_sets.set_probs(scores) if multi_hf else scores

    return run_hf


def _softmax(logits: FloatArray) -> FloatArray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    result: FloatArray = shifted / shifted.sum(axis=1, keepdims=True)
    return result
