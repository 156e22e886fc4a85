"""LoraTrainer: fits a LoRA adapter and a linear head on MiniLM from accepted labels."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import peft
import torch
import transformers
from peft import LoraConfig, get_peft_model

from service.backends.minilm import BASE_MODEL_NAME, load_encoder, load_tokenizer, minilm_path, pad_batch, tokenize
from service.backends.student_model import (
    ADAPTER_DIR,
    HEAD_FILE,
    LORA_TARGET_MODULES,
    MAX_LENGTH,
    META_FILE,
    MiniLMClassifier,
    save_head,
)
from service.pipeline.metrics import classification_report
from service.ports import Progress, TrainConfig, TrainExample, TrainResult

_MIN_VALIDATION = 10
"""Fewer examples than this are all used for training, with no early stopping."""


@dataclass(frozen=True)
class _Tensors:
    """Examples as token ids and loss inputs, aligned by row."""

    token_ids: list[list[int]]
    targets: torch.Tensor
    weights: torch.Tensor
    soft_targets: torch.Tensor
    soft_share: torch.Tensor
    """Per row, the share of the loss on the soft target (0 where there is none)."""


def training_data_sha256(examples: Sequence[TrainExample], labels: Sequence[str]) -> str:
    """A hash of everything the training sees, in order: the label set and each example."""
    payload = {
        "labels": list(labels),
        "examples": [[e.text, e.label, e.weight, list(e.soft_target or ())] for e in examples],
    }
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()


def _validate(examples: Sequence[TrainExample], labels: Sequence[str]) -> None:
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise ValueError(f"need at least two distinct labels, got {list(labels)}")
    if not examples:
        raise ValueError("no training examples")
    known = set(labels)
    for e in examples:
        if e.label not in known:
            raise ValueError(f"example label {e.label!r} is not one of {list(labels)}")
        if e.weight <= 0:
            raise ValueError(f"example weight must be positive, got {e.weight}")
        if e.soft_target is not None and len(e.soft_target) != len(labels):
            raise ValueError(f"soft target has {len(e.soft_target)} values for {len(labels)} labels")


def _split(
    examples: Sequence[TrainExample], labels: Sequence[str], share: float, seed: int
) -> tuple[list[TrainExample], list[TrainExample]]:
    """A validation split stratified by label, so that rare classes appear on both sides."""
    if len(examples) < _MIN_VALIDATION or share <= 0:
        return list(examples), []
    rng = np.random.default_rng(seed)
    train: list[TrainExample] = []
    validation: list[TrainExample] = []
    for label in labels:
        group = [e for e in examples if e.label == label]
        order = rng.permutation(len(group))
        n_val = round(share * len(group)) if len(group) >= 2 else 0
        validation += [group[i] for i in order[:n_val]]
        train += [group[i] for i in order[n_val:]]
    return train, validation


class LoraTrainer:
    """Implements StudentTrainer: MiniLM + LoRA (peft) + linear head, weighted and soft-target loss."""

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
        """Train, keep the epoch with the lowest validation loss, and save the adapter folder to out_dir."""
        _validate(examples, labels)
        torch.manual_seed(config.seed)
        train_set, validation_set = _split(examples, labels, config.validation_share, config.seed)
        tokenizer = load_tokenizer(self._model_path)
        encoder = load_encoder(self._model_path)
        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=list(LORA_TARGET_MODULES),
            bias="none",
        )
        peft_encoder = get_peft_model(encoder, lora)
        model = MiniLMClassifier(peft_encoder, encoder.config.hidden_size, len(labels))
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate)
        pad_id = int(tokenizer.pad_token_id or 0)
        train_data = _to_tensors(tokenizer, train_set, labels, config.soft_target_weight)
        validation_data = _to_tensors(tokenizer, validation_set, labels, config.soft_target_weight)
        generator = torch.Generator().manual_seed(config.seed)
        n_batches = -(-len(train_set) // config.batch_size)
        total_steps = config.epochs * n_batches
        done = 0
        best_loss, best_epoch, bad_epochs, epochs_run = float("inf"), 0, 0, 0
        best_state = _trainable_state(model)
        train_loss = 0.0
        for epoch in range(1, config.epochs + 1):
            epochs_run = epoch
            model.train()
            order = torch.randperm(len(train_set), generator=generator).tolist()
            losses: list[float] = []
            for start in range(0, len(order), config.batch_size):
                rows = order[start : start + config.batch_size]
                loss = _loss(model, train_data, rows, pad_id)
                optimizer.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
                losses.append(float(loss))
                done += 1
                if progress is not None:
                    progress(done, total_steps)
            train_loss = float(np.mean(losses))
            if not validation_set:
                best_state, best_epoch = _trainable_state(model), epoch
                continue
            validation_loss, _ = _evaluate(model, validation_data, pad_id, config.batch_size)
            if validation_loss < best_loss - 1e-4:
                best_loss, best_epoch, bad_epochs = validation_loss, epoch, 0
                best_state = _trainable_state(model)
            else:
                bad_epochs += 1
                if bad_epochs >= config.patience:
                    break
        if progress is not None:
            progress(total_steps, total_steps)
        model.load_state_dict(best_state, strict=False)
        metrics = {"train_loss": train_loss, "best_epoch": float(best_epoch)}
        metrics |= {"n_train": float(len(train_set)), "n_validation": float(len(validation_set))}
        if validation_set:
            validation_loss, predicted = _evaluate(model, validation_data, pad_id, config.batch_size)
            report = classification_report(
                y_true=[e.label for e in validation_set], y_pred=[labels[i] for i in predicted], labels=labels
            )
            metrics |= {
                "validation_loss": validation_loss,
                "validation_accuracy": report["accuracy"],
                "validation_macro_f1": report["macro_f1"],
            }
        out_dir.mkdir(parents=True, exist_ok=True)
        peft_encoder.save_pretrained(str(out_dir / ADAPTER_DIR))
        save_head(model.head, str(out_dir / HEAD_FILE))
        meta = self._meta(out_dir, examples, labels, config, prompt_versions, metrics, epochs_run)
        (out_dir / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
        return TrainResult(path=out_dir, metrics=metrics, epochs_run=epochs_run)

    def _meta(
        self,
        out_dir: Path,
        examples: Sequence[TrainExample],
        labels: tuple[str, ...],
        config: TrainConfig,
        prompt_versions: Sequence[str],
        metrics: dict[str, float],
        epochs_run: int,
    ) -> dict[str, Any]:
        return {
            "version": out_dir.name,
            "base_model": self._base_model_name,
            "labels": list(labels),
            "label_map": {label: i for i, label in enumerate(labels)},
            "data_sha256": training_data_sha256(examples, labels),
            "n_examples": len(examples),
            "prompt_versions": sorted(set(prompt_versions)),
            "metrics": metrics,
            "epochs_run": epochs_run,
            "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "train_config": asdict(config),
            "max_length": MAX_LENGTH,
            "lora_target_modules": list(LORA_TARGET_MODULES),
            "library_versions": {
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "peft": peft.__version__,
            },
        }


def _to_tensors(
    tokenizer: transformers.PreTrainedTokenizerBase,
    examples: Sequence[TrainExample],
    labels: Sequence[str],
    soft_target_weight: float,
) -> _Tensors:
    index = {label: i for i, label in enumerate(labels)}
    soft = [e.soft_target or (0.0,) * len(labels) for e in examples]
    return _Tensors(
        token_ids=tokenize(tokenizer, [e.text for e in examples], MAX_LENGTH),
        targets=torch.tensor([index[e.label] for e in examples], dtype=torch.long),
        weights=torch.tensor([e.weight for e in examples], dtype=torch.float32),
        soft_targets=torch.tensor(soft, dtype=torch.float32).reshape(len(examples), len(labels)),
        soft_share=torch.tensor(
            [soft_target_weight if e.soft_target is not None else 0.0 for e in examples], dtype=torch.float32
        ),
    )


def _weighted_loss_sum(logits: torch.Tensor, data: _Tensors, rows: list[int]) -> torch.Tensor:
    """Sum over rows of weight * ((1 - s) * cross-entropy(label) + s * cross-entropy(teacher's probabilities))."""
    log_probs = torch.log_softmax(logits, dim=-1)
    hard = -log_probs.gather(1, data.targets[rows].unsqueeze(1)).squeeze(1)
    soft = -(data.soft_targets[rows] * log_probs).sum(dim=1)
    share = data.soft_share[rows]
    return ((1 - share) * hard + share * soft).mul(data.weights[rows]).sum()


def _loss(model: MiniLMClassifier, data: _Tensors, rows: list[int], pad_id: int) -> torch.Tensor:
    input_ids, attention_mask = pad_batch([data.token_ids[i] for i in rows], pad_id)
    return _weighted_loss_sum(model(input_ids, attention_mask), data, rows) / data.weights[rows].sum()


def _trainable_state(model: MiniLMClassifier) -> dict[str, torch.Tensor]:
    """A copy of what training changes (LoRA matrices and head), to restore the best epoch."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def _evaluate(model: MiniLMClassifier, data: _Tensors, pad_id: int, batch_size: int) -> tuple[float, list[int]]:
    """The weighted loss over all rows, and the predicted label index of each row."""
    model.eval()
    total, weight, predicted = 0.0, 0.0, []
    with torch.inference_mode():
        for start in range(0, len(data.token_ids), batch_size):
            rows = list(range(start, min(start + batch_size, len(data.token_ids))))
            input_ids, attention_mask = pad_batch([data.token_ids[i] for i in rows], pad_id)
            logits = model(input_ids, attention_mask)
            total += float(_weighted_loss_sum(logits, data, rows))
            weight += float(data.weights[rows].sum())
            predicted += logits.argmax(dim=-1).tolist()
    return total / weight, predicted
