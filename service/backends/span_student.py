"""The span student: MiniLM with a LoRA adapter and a BIO tag per sub-word token (`SpanTrainer`, `SpanStudent`).

The network is transformers' own ``BertForTokenClassification`` (MiniLM is a BERT encoder), so a trained student
merged into its encoder is already the model that ``pipeline("token-classification")`` loads: the export is
``save_pretrained``, with nothing to translate. A saved student is a folder: peft's adapter/ (LoRA weights with
the tag classifier as a module to save) and meta.json (kind ``spans``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForTokenClassification, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from service.backends.minilm import (
    BASE_MODEL_NAME,
    exact_unless_bf16,
    for_inference,
    load_tokenizer,
    minilm_path,
    pad_batch,
    resolve_precision,
)
from service.backends.student_data import batches_per_epoch, bucketed_batches
from service.backends.student_meta import StudentMeta
from service.backends.student_model import ADAPTER_DIR, LORA_TARGET_MODULES, MAX_LENGTH
from service.backends.student_train import fit_linear_probe, trainable_state, trained_meta
from service.pipeline import bio, span_sets
from service.ports import Precision, Progress, TrainConfig, TrainExample, TrainResult

SPAN_TRAIN_CONFIG = TrainConfig(batch_size=16)
"""Training settings of a span student, the rest as a text student's. WNUT 17, 800 posts, LoRA on query and value
(r 8): held-out entity micro-F1 0.332 in batches of 16 against 0.289 in batches of 32; a learning rate of 2e-3 gave
0.316, and LoRA on every linear layer (r 8 at 6e-4, r 16 at 3e-4) 0.25 in more time (at 1e-3 it diverged)."""
SPLIT_SHARE_MIN = 10
"""Fewer examples than this all go to training, with no early stopping."""


@dataclass(frozen=True)
class TaggedTexts:
    """Texts as token ids, each token's character offsets and its BIO tag id (bio.IGNORED for special tokens)."""

    token_ids: list[list[int]]
    offsets: list[list[tuple[int, int]]]
    tags: list[list[int]]
    weights: torch.Tensor

    def __len__(self) -> int:
        return len(self.token_ids)


def tag_model(model_path: Path, labels: Sequence[str]) -> PreTrainedModel:
    """MiniLM with a fresh tag classifier, its config naming the tags (what an export's pipeline reads)."""
    names = bio.tag_names(labels)
    # The classifier is new by design; transformers' report of its missing weights would read as a fault, and its
    # loading bar would fill a CLI's output once a load.
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        model: PreTrainedModel = AutoModelForTokenClassification.from_pretrained(
            str(model_path),
            num_labels=len(names),
            id2label=dict(enumerate(names)),
            label2id={name: i for i, name in enumerate(names)},
            local_files_only=True,
        )
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
    return model


def encode(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    spans: Sequence[Sequence[span_sets.Span]],
    labels: Sequence[str],
    weights: Sequence[float] | None = None,
) -> TaggedTexts:
    encoded = tokenizer(list(texts), truncation=True, max_length=MAX_LENGTH, return_offsets_mapping=True)
    offsets = [[(int(a), int(b)) for a, b in row] for row in encoded["offset_mapping"]]
    return TaggedTexts(
        token_ids=[list(ids) for ids in encoded["input_ids"]],
        offsets=offsets,
        tags=[bio.token_tags(row, given, labels) for row, given in zip(offsets, spans, strict=True)],
        weights=torch.tensor(list(weights) if weights is not None else [1.0] * len(texts), dtype=torch.float32),
    )


def _padded_tags(tags: Sequence[Sequence[int]]) -> torch.Tensor:
    width = max(len(row) for row in tags)
    out = torch.full((len(tags), width), bio.IGNORED, dtype=torch.long)
    for i, row in enumerate(tags):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def batch_loss(model: torch.nn.Module, data: TaggedTexts, rows: Sequence[int], pad_id: int) -> torch.Tensor:
    """Sum over rows of weight * mean token cross-entropy (special and padding tokens skipped)."""
    input_ids, attention_mask = pad_batch([data.token_ids[i] for i in rows], pad_id)
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    targets = _padded_tags([data.tags[i] for i in rows])
    per_token = torch.nn.functional.cross_entropy(
        logits.transpose(1, 2), targets, ignore_index=bio.IGNORED, reduction="none"
    )
    counted = (targets != bio.IGNORED).sum(dim=1).clamp(min=1)
    return (per_token.sum(dim=1) / counted * data.weights[list(rows)]).sum()


class SpanTrainer:
    """Fits the tag classifier as a linear probe of the frozen encoder (fit_tag_head), then trains LoRA (query,
    value) and the classifier by AdamW on token cross-entropy; the epoch with the best validation entity micro-F1 is
    kept, the probe (epoch 0) included (see _validation_score)."""

    def __init__(self, model_path: Path | None = None, *, base_model_name: str = BASE_MODEL_NAME) -> None:
        self._model_path = model_path or minilm_path()
        self._base_model_name = base_model_name

    def train(
        self,
        examples: Sequence[TrainExample],
        labels: tuple[str, ...],
        out_dir: Path,
        config: TrainConfig,
        progress: Progress | None = None,
        *,
        prompt_versions: Sequence[str] = (),
    ) -> TrainResult:
        """Train and save the student folder; each example's label is a span set's stored name."""
        if not labels or len(set(labels)) != len(labels):
            raise ValueError(f"need distinct span labels, got {list(labels)}")
        if not examples:
            raise ValueError("no training examples")
        given = [span_sets.members(e.label) for e in examples]
        torch.manual_seed(config.seed)
        order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(config.seed)).tolist()
        n_validation = round(config.validation_share * len(examples)) if len(examples) >= SPLIT_SHARE_MIN else 0
        validation_rows, train_rows = order[:n_validation], order[n_validation:]
        tokenizer = load_tokenizer(self._model_path)
        network = tag_model(self._model_path, labels)
        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=list(LORA_TARGET_MODULES),
            modules_to_save=["classifier"],
            bias="none",
        )

        def part(rows: list[int]) -> TaggedTexts:
            return encode(
                tokenizer,
                [examples[i].text for i in rows],
                [given[i] for i in rows],
                labels,
                [examples[i].weight for i in rows],
            )

        train_data, validation_data = part(train_rows), part(validation_rows)
        pad_id = int(tokenizer.pad_token_id or 0)
        fit_tag_head(network, train_data, pad_id, batch_size=config.batch_size)
        model = get_peft_model(network, lora)  # the wrapper copies the fitted head as the classifier it trains
        epochs_run, best_epoch, train_loss = _fine_tune(
            model, train_data, validation_data, pad_id, config, progress, labels
        )
        metrics = {"train_loss": train_loss, "best_epoch": float(best_epoch)}
        metrics |= {"n_train": float(len(train_rows)), "n_validation": float(len(validation_rows))}
        if validation_rows:
            predicted = [span_sets.set_name(spans) for spans, _ in _decode(model, validation_data, labels, pad_id)]
            truth = [examples[i].label for i in validation_rows]
            report = span_sets.entity_report(y_true=truth, y_pred=predicted, labels=labels)
            metrics |= {
                "validation_loss": _mean_loss(model, validation_data, pad_id, config.batch_size),
                "validation_accuracy": report["accuracy"],
                "validation_macro_f1": report["macro_f1"],
                "validation_micro_f1": report.get("micro_f1", 0.0),
            }
        out_dir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(str(out_dir / ADAPTER_DIR))
        trained_meta(
            out_dir,
            base_model=self._base_model_name,
            examples=examples,
            labels=labels,
            config=config,
            prompt_versions=prompt_versions,
            metrics=metrics,
            epochs_run=epochs_run,
            kind="spans",
        ).save_pretrained(out_dir)
        return TrainResult(path=out_dir, metrics=metrics, epochs_run=epochs_run)


HEAD_L2 = 0.05
"""Penalty on the tag head's weights in the linear probe that starts training (fit_tag_head), against the mean
token cross-entropy. WNUT 17, 250 posts, 500 held out: entity micro-F1 0.178 / 0.172 / 0.198 / 0.313 / 0.346 /
0.315 / 0.306 at 5e-5 / 5e-4 / 5e-3 / 0.015 / 0.05 / 0.15 / 0.5 (from a random head: 0.0)."""


def fit_tag_head(
    network: PreTrainedModel, data: TaggedTexts, pad_id: int, *, batch_size: int, l2: float = HEAD_L2
) -> None:
    """Set the tag classifier to a linear probe of the frozen encoder: L2-penalised logistic regression from each
    token's last hidden state to its tag, weighted as its text (as a text student's head starts, student_train).
    Fine-tuning then starts from a tagger that already finds entities instead of from a random head that tags every
    token outside (with 250 WNUT 17 posts the random start found none in ten epochs), and the probe itself is the
    first candidate early stopping weighs."""
    if not len(data):
        return
    network.eval()  # type: ignore[no-untyped-call]
    features: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    weights: list[torch.Tensor] = []
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            rows = list(range(start, min(start + batch_size, len(data))))
            input_ids, attention_mask = pad_batch([data.token_ids[i] for i in rows], pad_id)
            hidden = network(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
            states, tags = hidden.hidden_states[-1].float(), _padded_tags([data.tags[i] for i in rows])
            kept = tags != bio.IGNORED
            features.append(states[kept])
            targets.append(tags[kept])
            weights.append(data.weights[rows].unsqueeze(1).expand_as(tags)[kept])
    x, y, w = torch.cat(features), torch.cat(targets), torch.cat(weights)
    classifier = cast(torch.nn.Linear, network.classifier)

    def loss() -> torch.Tensor:
        return (torch.nn.functional.cross_entropy(classifier(x), y, reduction="none") * w).sum() / w.sum()

    fit_linear_probe(classifier, loss, l2=l2)


def _fine_tune(
    model: torch.nn.Module,
    train_data: TaggedTexts,
    validation_data: TaggedTexts,
    pad_id: int,
    config: TrainConfig,
    progress: Progress | None,
    labels: Sequence[str],
) -> tuple[int, int, float]:
    """(epochs run, best epoch, last epoch's training loss); stops after `patience` epochs without a better
    validation score (entity micro-F1, then loss: see _validation_score) and restores the best epoch's weights."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate)
    generator = torch.Generator().manual_seed(config.seed)
    total_steps = config.epochs * batches_per_epoch(len(train_data), config.batch_size)
    best_score, best_epoch, bad_epochs, done, epoch, train_loss = (-1.0, -math.inf), 0, 0, 0, 0, 0.0
    best_state = trainable_state(model)
    # The spans the validation tags spell, read once: what every epoch's tagger is scored against.
    truth = [
        span_sets.set_name(bio.decode(offsets, tags, labels))
        for offsets, tags in zip(validation_data.offsets, validation_data.tags, strict=True)
    ]
    if len(validation_data):  # the linear probe the head starts from (epoch 0) is the first candidate
        best_score = _validation_score(model, validation_data, truth, labels, pad_id, config.batch_size)
    for epoch in range(1, config.epochs + 1):
        model.train()
        losses: list[float] = []
        for rows in bucketed_batches(train_data.token_ids, config.batch_size, generator):
            loss = batch_loss(model, train_data, rows, pad_id) / train_data.weights[rows].sum()
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            losses.append(loss.item())
            done += 1
            if progress is not None:
                progress(done, total_steps)
        train_loss = sum(losses) / len(losses)
        if not len(validation_data):
            best_state, best_epoch = trainable_state(model), epoch
            continue
        score = _validation_score(model, validation_data, truth, labels, pad_id, config.batch_size)
        if score[0] > best_score[0] or (score[0] == best_score[0] and score[1] > best_score[1] + 1e-4):
            best_score, best_epoch, bad_epochs, best_state = score, epoch, 0, trainable_state(model)
        elif score[0] > 0:
            # Until it finds its first entity the tagger is still leaving its start, where every token is outside
            # (WNUT 17, 800 posts: no entity in epochs 1 to 3, then micro-F1 0.33 by epoch 8): patience waits.
            bad_epochs += 1
            if bad_epochs >= config.patience:
                break
    if progress is not None:
        progress(total_steps, total_steps)
    model.load_state_dict(best_state, strict=False)
    return epoch, best_epoch, train_loss


def _validation_score(
    model: torch.nn.Module, data: TaggedTexts, truth: Sequence[str], labels: Sequence[str], pad_id: int, batch_size: int
) -> tuple[float, float]:
    """(entity micro-F1, minus the loss) on validation, compared in that order. The loss alone picks the wrong
    epoch: most tokens are outside every entity, and while their loss still falls the entities are missed
    (WNUT 17, 800 posts: the lowest-loss epoch found no entity at all)."""
    said = [span_sets.set_name(spans) for spans, _ in _decode(model, data, labels, pad_id, batch_size)]
    report = span_sets.entity_report(y_true=truth, y_pred=said, labels=labels)
    return report.get("micro_f1", 0.0), -_mean_loss(model, data, pad_id, batch_size)


def _mean_loss(model: torch.nn.Module, data: TaggedTexts, pad_id: int, batch_size: int) -> float:
    model.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            total += float(batch_loss(model, data, range(start, min(start + batch_size, len(data))), pad_id))
    return total / float(data.weights.sum())


def _decode(
    model: torch.nn.Module, data: TaggedTexts, labels: Sequence[str], pad_id: int, batch_size: int = 64
) -> list[tuple[list[span_sets.Span], float]]:
    """Per text, the spans its likeliest tags spell and the probability of that whole tag sequence (the product of
    each token's top tag probability)."""
    model.eval()
    order = sorted(range(len(data)), key=lambda i: len(data.token_ids[i]))
    results: dict[int, tuple[list[span_sets.Span], float]] = {}
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            input_ids, attention_mask = pad_batch([data.token_ids[i] for i in rows], pad_id)
            log_probs = torch.log_softmax(model(input_ids=input_ids, attention_mask=attention_mask).logits.float(), -1)
            best, tags = log_probs.max(dim=-1)
            for j, i in enumerate(rows):
                offsets = data.offsets[i]
                real = [k for k, (a, b) in enumerate(offsets) if a != b]
                spans = bio.decode(offsets, tags[j, : len(offsets)].tolist(), labels)
                results[i] = (spans, math.exp(float(best[j, real].sum())) if real else 1.0)
    return [results[i] for i in range(len(data))]


class SpanStudent:
    """A trained span student for inference: LoRA merged into the encoder (a plain BertForTokenClassification)."""

    def __init__(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, meta: StudentMeta, *, precision: Precision
    ) -> None:
        self._model = model
        self._tokenizer = tokenizer
        self.meta = meta
        self.precision = precision

    @classmethod
    def load(cls, path: Path, *, precision: Precision = "float32", model_path: Path | None = None) -> SpanStudent:
        meta = StudentMeta.from_pretrained(path)
        base_path = model_path or minilm_path()
        merged: Any = PeftModel.from_pretrained(tag_model(base_path, meta.labels), str(path / ADAPTER_DIR))
        model = merged.merge_and_unload()
        chosen = resolve_precision(exact_unless_bf16(precision))
        return cls(for_inference(model, chosen), load_tokenizer(base_path), meta, precision=chosen)

    @property
    def network(self) -> PreTrainedModel:
        return self._model

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return self._tokenizer

    @property
    def version(self) -> str:
        return self.meta.version

    @property
    def labels(self) -> tuple[str, ...]:
        return self.meta.labels

    def predict_spans(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        """Per text, its span set's stored name and the probability of the tag sequence that spells it."""
        return decode_texts(self._model, self._tokenizer, texts, self.labels)


def decode_texts(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], labels: Sequence[str]
) -> list[tuple[str, float]]:
    """Per text, the stored name of the span set a tagging model reads in it, and that tag sequence's probability."""
    data = encode(tokenizer, texts, [()] * len(texts), labels)
    pad_id = int(tokenizer.pad_token_id or 0)
    return [(span_sets.set_name(spans), p) for spans, p in _decode(model, data, labels, pad_id)]
