"""Protocols between the pipeline and the backends, and the plain data that crosses them.

The pipeline only ever sees these types; torch, vLLM, peft and HTTP stay inside service/backends/.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Progress = Callable[[int, int], None]
"""Called as progress(done, total) during long work."""


@dataclass(frozen=True)
class LabelDef:
    name: str
    description: str = ""


@dataclass(frozen=True)
class Example:
    text: str
    label: str


TaskKind = Literal["single_label", "multi_label", "spans"]
"""What one item's label is. single_label: exactly one of the task's labels; multi_label: a set of them, possibly
empty, scored as a choice among the sets (pipeline.label_sets); spans: non-overlapping character spans of the text,
each with one label, possibly none (pipeline.span_sets). Each stage decides what a kind means in one place
(pipeline.kinds)."""


@dataclass(frozen=True)
class TaskDef:
    name: str
    labels: tuple[LabelDef, ...]
    instructions: str
    examples: tuple[Example, ...] = ()
    template: str = "classify/chatml"
    kind: TaskKind = "single_label"

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(label.name for label in self.labels)


@dataclass(frozen=True)
class ScoreRequest:
    """One prompt and the continuations to score after it (the task's labels as the model writes them)."""

    prompt: str
    continuations: tuple[str, ...]


@dataclass(frozen=True)
class GenerateRequest:
    """One prompt and the JSON schema its answer must follow (the teacher's decoder enforces it), greedily decoded
    for at most ``max_tokens`` tokens."""

    prompt: str
    json_schema: dict[str, object]
    max_tokens: int


@dataclass(frozen=True)
class Generation:
    """A generated answer with its tokens' log-probabilities (each over the tokens the schema allowed there)."""

    text: str
    token_ends: tuple[int, ...]
    """Per token, the offset in ``text`` where it ends."""
    token_logprobs: tuple[float, ...]
    finished: bool
    """False when ``max_tokens`` cut the answer short."""


class TeacherUnavailable(RuntimeError):
    """The teacher could not be reached for longer than its configured wait; retry the work later."""


class Teacher(Protocol):
    """A language model that scores whole label strings after a prompt."""

    @property
    def model_name(self) -> str: ...

    @property
    def max_prompt_tokens(self) -> int:
        """Tokens a prompt may take so that the longest continuation still fits the context."""
        ...

    @property
    def special_tokens(self) -> tuple[str, ...]:
        """Strings the tokenizer turns into control tokens (chat turns, end of text): item text must not carry
        them into a prompt (pipeline.render.escape_special)."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        """The longest prefix of text within max_tokens tokens, and whether anything was cut."""
        ...

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        """For each request, the summed log-probability of each whole continuation after its prompt."""
        ...

    def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        """For each request, the greedy answer that follows its JSON schema (a spans task's entities)."""
        ...


class Embedder(Protocol):
    @property
    def model_name(self) -> str: ...

    def embed(self, texts: Sequence[str]) -> FloatArray:
        """An (n, d) array of L2-normalised embeddings."""
        ...


class Student(Protocol):
    @property
    def version(self) -> str: ...

    @property
    def labels(self) -> tuple[str, ...]: ...

    @property
    def columns(self) -> tuple[str, ...]:
        """What predict_proba's columns are: the labels, or a multi-label task's label sets (kinds.columns)."""
        ...

    def predict_proba(self, texts: Sequence[str]) -> FloatArray:
        """An (n, columns) array of probabilities over self.columns."""
        ...


@runtime_checkable
class SpanTagger(Protocol):
    """A student of a spans task: it reads span sets in texts rather than scoring columns."""

    @property
    def version(self) -> str: ...

    @property
    def labels(self) -> tuple[str, ...]: ...

    def predict_spans(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        """Per text, the stored name of its span set (pipeline.span_sets) and the probability that it is right."""
        ...


Precision = Literal["auto", "float32", "bfloat16", "int8"]
"""How a MiniLM encoder runs at inference. bfloat16 is fast only where the CPU has bfloat16 matrix units (AMX or
AVX512-BF16) and keeps probabilities within about 0.01 of float32; int8 dynamic quantization is fast everywhere but
moves them by up to 0.3; "auto" picks bfloat16 where the CPU has the units, else int8."""

StudentExportFormat = Literal["hf", "onnx"]
"""How a student leaves the service: a transformers folder, or ONNX for onnxruntime."""


@dataclass(frozen=True)
class TrainExample:
    text: str
    label: str
    weight: float = 1.0
    soft_target: tuple[float, ...] | None = None
    """The teacher's calibrated probabilities over the task's labels, when known."""


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    learning_rate: float = 1e-3
    batch_size: int = 32
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    seed: int = 0
    patience: int = 2
    validation_share: float = 0.15
    soft_target_weight: float = 0.5
    """Share of the loss taken by the teacher's soft targets on machine labels."""


@dataclass(frozen=True)
class TrainResult:
    path: Path
    metrics: dict[str, float] = field(default_factory=dict)
    epochs_run: int = 0


class StudentTrainer(Protocol):
    def train(
        self,
        examples: Sequence[TrainExample],
        labels: tuple[str, ...],
        out_dir: Path,
        config: TrainConfig,
        progress: Progress | None = None,
    ) -> TrainResult: ...
