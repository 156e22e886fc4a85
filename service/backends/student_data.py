"""Training data for the LoRA student: checks, hash, stratified split, tensors and length-bucketed batches."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from service.backends.minilm import tokenize
from service.pipeline import kinds, label_sets
from service.ports import TaskKind, TrainExample

BATCHES_PER_POOL = 8
MIN_VALIDATION = 10
"""Fewer examples than this are all used for training, with no early stopping."""


@dataclass(frozen=True)
class ExampleTensors:
    """Examples as token ids and loss inputs, aligned by row."""

    token_ids: list[list[int]]
    targets: torch.Tensor
    """(n,) label indices; for a multi-label task (n, k) 0/1 floats, each label's presence."""
    weights: torch.Tensor
    soft_targets: torch.Tensor
    """(n, k) the teacher's probabilities: over the labels, or of each label's presence (multi-label)."""
    soft_share: torch.Tensor
    """Per row, the share of the loss on the soft target (0 where there is none)."""

    def __len__(self) -> int:
        return len(self.token_ids)


def training_data_sha256(examples: Sequence[TrainExample], labels: Sequence[str]) -> str:
    """A hash of everything the training sees, in order: the label set and each example."""
    payload = {
        "labels": list(labels),
        "examples": [[e.text, e.label, e.weight, list(e.soft_target or ())] for e in examples],
    }
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()


def validate_examples(examples: Sequence[TrainExample], labels: Sequence[str], kind: TaskKind) -> None:
    """Examples' labels must be among the task's score columns (a label, or a label set's name), soft targets
    one probability per column."""
    minimum = 1 if kind == "multi_label" else 2
    if len(labels) < minimum or len(set(labels)) != len(labels):
        raise ValueError(f"need at least {minimum} distinct labels, got {list(labels)}")
    if not examples:
        raise ValueError("no training examples")
    columns = kinds.columns(kind, labels)
    known = set(columns)
    for e in examples:
        if e.label not in known:
            raise ValueError(f"example label {e.label!r} is not one of {list(columns)}")
        if e.weight <= 0:
            raise ValueError(f"example weight must be positive, got {e.weight}")
        if e.soft_target is not None and len(e.soft_target) != len(columns):
            raise ValueError(f"soft target has {len(e.soft_target)} values for {len(columns)} columns")


def stratified_split(
    examples: Sequence[TrainExample], labels: Sequence[str], share: float, seed: int
) -> tuple[list[TrainExample], list[TrainExample]]:
    """(train, validation), split per label so that rare classes appear on both sides."""
    if len(examples) < MIN_VALIDATION or share <= 0:
        return list(examples), []
    rng = np.random.default_rng(seed)
    train: list[TrainExample] = []
    validation: list[TrainExample] = []
    for label in labels:
        group = [e for e in examples if e.label == label]
        order = rng.permutation(len(group))
        n_validation = round(share * len(group)) if len(group) >= 2 else 0
        validation += [group[i] for i in order[:n_validation]]
        train += [group[i] for i in order[n_validation:]]
    return train, validation


def to_tensors(
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[TrainExample],
    labels: Sequence[str],
    *,
    kind: TaskKind,
    soft_target_weight: float,
    max_length: int,
) -> ExampleTensors:
    columns = kinds.columns(kind, labels)
    index = {name: i for i, name in enumerate(columns)}
    targets = torch.tensor([index[e.label] for e in examples], dtype=torch.long)
    soft = np.asarray([e.soft_target or (0.0,) * len(columns) for e in examples], dtype=np.float64)
    soft = soft.reshape(len(examples), len(columns))
    if kind == "multi_label":
        targets = torch.from_numpy(label_sets.indicators(targets.numpy(), len(labels))).float()
        soft = label_sets.presence(soft)
    return ExampleTensors(
        token_ids=tokenize(tokenizer, [e.text for e in examples], max_length),
        targets=targets,
        weights=torch.tensor([e.weight for e in examples], dtype=torch.float32),
        soft_targets=torch.from_numpy(soft).float(),
        soft_share=torch.tensor(
            [soft_target_weight if e.soft_target is not None else 0.0 for e in examples], dtype=torch.float32
        ),
    )


def bucketed_batches(
    token_ids: Sequence[Sequence[int]], batch_size: int, generator: torch.Generator
) -> list[list[int]]:
    """Shuffled batches of similar-length rows: random order, little padding.

    Rows are shuffled, cut into pools of a few batches, sorted by length inside each pool and batched;
    the batches are then shuffled again so that lengths do not come in order.
    """
    order = torch.randperm(len(token_ids), generator=generator).tolist()
    pool_size = batch_size * BATCHES_PER_POOL
    batches: list[list[int]] = []
    for start in range(0, len(order), pool_size):
        pool = sorted(order[start : start + pool_size], key=lambda i: len(token_ids[i]))
        batches += [pool[i : i + batch_size] for i in range(0, len(pool), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def batches_per_epoch(n_rows: int, batch_size: int) -> int:
    pool_size = batch_size * BATCHES_PER_POOL
    return (n_rows // pool_size) * BATCHES_PER_POOL + -(-(n_rows % pool_size) // batch_size)


def weighted_loss_sum(logits: torch.Tensor, data: ExampleTensors, rows: Sequence[int]) -> torch.Tensor:
    """Sum over rows of weight * ((1 - s) * cross-entropy(label) + s * cross-entropy(teacher's probabilities)):
    over the labels (softmax), or for a multi-label task summed over each label's present/absent (sigmoid)."""
    index = torch.as_tensor(rows, dtype=torch.long)
    targets = data.targets[index]
    if targets.ndim == 2:
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        hard = bce(logits, targets, reduction="none").sum(dim=1)
        soft = bce(logits, data.soft_targets[index], reduction="none").sum(dim=1)
    else:
        log_probs = torch.log_softmax(logits, dim=-1)
        hard = -log_probs.gather(1, targets.unsqueeze(1)).squeeze(1)
        soft = -(data.soft_targets[index] * log_probs).sum(dim=1)
    share = data.soft_share[index]
    return ((1 - share) * hard + share * soft).mul(data.weights[index]).sum()
