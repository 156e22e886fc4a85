"""The LoRA student: `LoraTrainer` (training, in student_train.py) and `LoraStudent` (inference).

A trained student is a folder: peft's adapter/ (LoRA weights), head.safetensors and meta.json.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from peft import PeftModel

from service.backends.minilm import (
    exact_unless_bf16,
    for_inference,
    length_sorted_batches,
    load_encoder,
    load_tokenizer,
    minilm_path,
    resolve_precision,
)
from service.backends.student_meta import StudentMeta
from service.backends.student_model import ADAPTER_DIR, HEAD_FILE, MiniLMClassifier, load_head
from service.backends.student_train import LoraTrainer
from service.pipeline import kinds, label_sets
from service.ports import FloatArray, Precision

__all__ = ["LoraStudent", "LoraTrainer"]


class LoraStudent:
    """Implements Student: LoRA merged into MiniLM for inference, at float32 (the default, exact on reload),
    bfloat16 or int8."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        meta: StudentMeta,
        *,
        batch_size: int = 64,
        precision: Precision = "float32",
    ) -> None:
        self._model = model
        self._tokenizer = tokenizer
        self.meta = meta
        self._batch_size = batch_size
        self.precision = precision
        """What the network runs at (never "auto")."""

    @classmethod
    def load(
        cls, path: Path, *, precision: Precision = "float32", batch_size: int = 64, model_path: Path | None = None
    ) -> LoraStudent:
        """Load a saved student folder; `model_path` is the base MiniLM folder (default: the packaged one)."""
        meta = StudentMeta.from_pretrained(path)
        base_path = model_path or minilm_path()
        encoder = load_encoder(base_path)
        # Merging folds the low-rank update into the base weights: inference costs what plain MiniLM costs.
        merged = PeftModel.from_pretrained(encoder, str(path / ADAPTER_DIR)).merge_and_unload()
        model = MiniLMClassifier(merged, encoder.config.hidden_size, len(meta.labels))
        load_head(model.head, str(path / HEAD_FILE))
        if meta.kind == "multi_label":
            precision = exact_unless_bf16(precision)
        return cls(
            for_inference(model, precision),
            load_tokenizer(base_path),
            meta,
            batch_size=batch_size,
            precision=resolve_precision(precision),
        )

    @property
    def network(self) -> torch.nn.Module:
        """The merged classifier (encoder, mean pooling, head), for export."""
        return self._model

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    @property
    def version(self) -> str:
        return self.meta.version

    @property
    def labels(self) -> tuple[str, ...]:
        return self.meta.labels

    @property
    def columns(self) -> tuple[str, ...]:
        return kinds.columns(self.meta.kind, self.meta.labels)

    def predict_proba(self, texts: Sequence[str]) -> FloatArray:
        """Probabilities over the task's score columns: its labels, or its label sets (each label's sigmoid,
        its validation threshold folded in, joined by independence)."""
        multi = self.meta.kind == "multi_label"
        probs = np.zeros((len(texts), len(self.meta.labels)), dtype=np.float64)
        if not texts:
            return label_sets.set_probs(probs) if multi else probs
        batches = length_sorted_batches(
            self._tokenizer, texts, batch_size=self._batch_size, max_length=self.meta.max_length
        )
        with torch.inference_mode():
            for batch in batches:
                logits = self._model(batch.input_ids, batch.attention_mask).double()
                probs[batch.positions] = (torch.sigmoid(logits) if multi else torch.softmax(logits, dim=-1)).numpy()
        return label_sets.set_probs(probs) if multi else probs
