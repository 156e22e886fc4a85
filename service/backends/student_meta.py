"""The meta.json of a saved student folder, typed: written once by the trainer, read back by every loader."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from service.pipeline import kinds
from service.ports import TaskKind

META_FILE = "meta.json"


@dataclass(frozen=True)
class StudentMeta:
    """What a student folder was trained from and how to run it (peft's PeftConfig plays this part for adapters)."""

    version: str
    base_model: str
    labels: tuple[str, ...]
    data_sha256: str
    """Hash of the training examples, so two folders trained on the same data can be told apart from others."""
    n_examples: int
    prompt_versions: tuple[str, ...]
    """Template shas behind the teacher's labels and soft targets it was trained on."""
    metrics: dict[str, float]
    epochs_run: int
    created_utc: str
    train_config: dict[str, Any]
    max_length: int
    lora_target_modules: tuple[str, ...]
    library_versions: dict[str, str] = field(default_factory=dict)
    kind: TaskKind = "single_label"
    """single_label: a softmax head over the labels; multi_label: a sigmoid per label."""
    thresholds: tuple[float, ...] = ()
    """Multi-label: each label's cut on its sigmoid, chosen for F1 on the validation split and already folded into
    the head's bias (a label is predicted when its probability is over one half); kept as a record."""

    @property
    def label_map(self) -> dict[str, int]:
        return {label: index for index, label in enumerate(self.labels)}

    def save_pretrained(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        data = {**asdict(self), "label_map": self.label_map}
        (folder / META_FILE).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")

    @classmethod
    def from_pretrained(cls, folder: Path) -> StudentMeta:
        """The meta of a saved student folder; a ValueError names the folder when the file is missing or malformed."""
        path = folder / META_FILE
        try:
            data = json.loads(path.read_text())
            return cls(
                version=str(data["version"]),
                base_model=str(data["base_model"]),
                labels=tuple(str(label) for label in data["labels"]),
                data_sha256=str(data["data_sha256"]),
                n_examples=int(data["n_examples"]),
                prompt_versions=tuple(str(sha) for sha in data["prompt_versions"]),
                metrics={str(k): float(v) for k, v in data["metrics"].items()},
                epochs_run=int(data["epochs_run"]),
                created_utc=str(data["created_utc"]),
                train_config=dict(data["train_config"]),
                max_length=int(data["max_length"]),
                lora_target_modules=tuple(str(m) for m in data["lora_target_modules"]),
                library_versions={str(k): str(v) for k, v in data.get("library_versions", {}).items()},
                kind=kinds.kind_named(data.get("kind", "single_label")),
                thresholds=tuple(float(t) for t in data.get("thresholds", ())),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}: not a student's meta.json ({type(exc).__name__}: {exc})") from exc
