"""LoraTrainer: fits a linear head, then a LoRA adapter with it, on MiniLM from accepted labels."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import peft
import torch
import transformers
from peft import LoraConfig, get_peft_model

from service.backends.minilm import BASE_MODEL_NAME, load_encoder, load_tokenizer, minilm_path, pad_batch
from service.backends.student_data import (
    ExampleTensors,
    batches_per_epoch,
    bucketed_batches,
    stratified_split,
    to_tensors,
    training_data_sha256,
    validate_examples,
    weighted_loss_sum,
)
from service.backends.student_meta import StudentMeta
from service.backends.student_model import (
    ADAPTER_DIR,
    HEAD_FILE,
    LORA_TARGET_MODULES,
    MAX_LENGTH,
    MiniLMClassifier,
    save_head,
)
from service.pipeline import kinds, label_sets
from service.ports import Progress, TaskKind, TrainConfig, TrainExample, TrainResult

PROBE_MAX_ITERATIONS = 200
PROBE_L2: dict[TaskKind, float] = {"single_label": 1e-3, "multi_label": 1e-4}
"""Weight penalty of the linear probe that starts training. A sigmoid head under 1e-3 started so far from its best
that LoRA never bettered it on validation (GoEmotions, 800 labels: held-out micro-F1 0.42); under 1e-4 LoRA took
over from epoch 1 and reached 0.50."""
MIN_IMPROVEMENT = 1e-4
"""Validation loss must fall by more than this to count as better (early stopping)."""
THRESHOLD_GRID = tuple(round(0.1 * step, 1) for step in range(1, 10))
"""Cuts a multi-label student may put on a label's sigmoid; 0.5 wins ties."""
MIN_THRESHOLD_POSITIVES = 30
"""Validation items that must have a label before its cut moves from 0.5: cuts tuned on a few positives (75
validation comments of GoEmotions, 500 in training) cost held-out micro-F1 0.45 -> 0.41 and exact-set accuracy
0.44 -> 0.25, and with 10 positives exact-set accuracy still fell to 0.39."""


@dataclass(frozen=True)
class _Run:
    epochs_run: int
    best_epoch: int
    """0 means the linear probe alone was best on validation."""
    train_loss: float


class LoraTrainer:
    """Implements StudentTrainer: MiniLM + LoRA (peft) + linear head, weighted and soft-target loss.

    Training is linear probe, then fine-tuning (LP-FT): the head is first fitted on the frozen encoder's
    embeddings, so that a few LoRA epochs refine a good classifier instead of first undoing a random head.
    The epoch with the lowest validation loss is kept (the probe counts as epoch 0).
    """

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
        kind: TaskKind = "single_label",
    ) -> TrainResult:
        """Train and save the student folder (adapter/, head.safetensors, meta.json) to out_dir.

        ``labels`` are the task's labels; each example's label is one of them or, for a multi-label task, a label
        set's name, whose labels the sigmoid head learns one by one."""
        validate_examples(examples, labels, kind)
        torch.manual_seed(config.seed)
        columns = kinds.columns(kind, labels)
        train_set, validation_set = stratified_split(examples, columns, config.validation_share, config.seed)
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
        pad_id = int(tokenizer.pad_token_id or 0)
        train_data, validation_data = (
            to_tensors(
                tokenizer,
                part,
                labels,
                kind=kind,
                soft_target_weight=config.soft_target_weight,
                max_length=MAX_LENGTH,
            )
            for part in (train_set, validation_set)
        )

        _fit_head(model, train_data, pad_id, config.batch_size, l2=PROBE_L2[kind])
        run = _fine_tune(model, train_data, validation_data, pad_id, config, progress)

        metrics = {"train_loss": run.train_loss, "best_epoch": float(run.best_epoch)}
        metrics |= {"n_train": float(len(train_set)), "n_validation": float(len(validation_set))}
        thresholds: tuple[float, ...] = (0.5,) * len(labels) if kind == "multi_label" else ()
        if validation_set:
            validation_loss, logits = _evaluate(model, validation_data, pad_id, config.batch_size)
            if kind == "multi_label":
                thresholds = _label_thresholds(torch.sigmoid(logits), validation_data.targets.bool())
                _fold_thresholds(model.head, thresholds)
                shifted = logits - torch.logit(torch.tensor(thresholds, dtype=logits.dtype))
                predicted = [_set_of(row, labels) for row in shifted]
            else:
                predicted = [labels[i] for i in logits.argmax(dim=-1).tolist()]
            report = kinds.report(kind, y_true=[e.label for e in validation_set], y_pred=predicted, labels=labels)
            metrics |= {
                "validation_loss": validation_loss,
                "validation_accuracy": report["accuracy"],
                "validation_macro_f1": report["macro_f1"],
            }
            if "micro_f1" in report:
                metrics["validation_micro_f1"] = report["micro_f1"]
        out_dir.mkdir(parents=True, exist_ok=True)
        peft_encoder.save_pretrained(str(out_dir / ADAPTER_DIR))
        save_head(model.head, str(out_dir / HEAD_FILE))
        trained_meta(
            out_dir,
            base_model=self._base_model_name,
            examples=examples,
            labels=labels,
            config=config,
            prompt_versions=prompt_versions,
            metrics=metrics,
            epochs_run=run.epochs_run,
            kind=kind,
            thresholds=thresholds,
        ).save_pretrained(out_dir)
        return TrainResult(path=out_dir, metrics=metrics, epochs_run=run.epochs_run)


def trained_meta(
    out_dir: Path,
    *,
    base_model: str,
    examples: Sequence[TrainExample],
    labels: tuple[str, ...],
    config: TrainConfig,
    prompt_versions: Sequence[str],
    metrics: dict[str, float],
    epochs_run: int,
    kind: TaskKind,
    thresholds: tuple[float, ...] = (),
) -> StudentMeta:
    """The meta.json of a student just trained into ``out_dir`` (a text student or a span tagger)."""
    return StudentMeta(
        version=out_dir.name,
        base_model=base_model,
        labels=labels,
        data_sha256=training_data_sha256(examples, labels),
        n_examples=len(examples),
        prompt_versions=tuple(sorted(set(prompt_versions))),
        metrics=metrics,
        epochs_run=epochs_run,
        created_utc=datetime.now(UTC).isoformat(timespec="seconds"),
        train_config=asdict(config),
        max_length=MAX_LENGTH,
        lora_target_modules=LORA_TARGET_MODULES,
        library_versions={
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
        },
        kind=kind,
        thresholds=thresholds,
    )


def _label_thresholds(probs: torch.Tensor, present: torch.Tensor) -> tuple[float, ...]:
    """Per label, the cut on its probability with the best F1 on validation (0.5 where fewer than
    MIN_THRESHOLD_POSITIVES items have the label)."""
    cuts: list[float] = []
    for i in range(probs.shape[1]):
        truth = present[:, i]
        best, best_f1 = 0.5, -1.0
        if int(truth.sum()) >= MIN_THRESHOLD_POSITIVES:
            for cut in sorted(THRESHOLD_GRID, key=lambda t: abs(t - 0.5)):
                said = probs[:, i] > cut
                f1 = 2 * float((said & truth).sum()) / float(said.sum() + truth.sum())
                if f1 > best_f1:
                    best, best_f1 = cut, f1
        cuts.append(best)
    return tuple(cuts)


def _fold_thresholds(head: torch.nn.Linear, thresholds: Sequence[float]) -> None:
    """Shift each label's logit by its cut's log-odds, so that one half is every label's threshold wherever the
    head runs (the service, an export)."""
    with torch.no_grad():
        head.bias.sub_(torch.logit(torch.tensor(thresholds, dtype=head.bias.dtype)))


def _set_of(logits: torch.Tensor, labels: Sequence[str]) -> str:
    return label_sets.set_name(
        [label for label, logit in zip(labels, logits.tolist(), strict=True) if logit > 0], labels
    )


def _pooled(model: MiniLMClassifier, data: ExampleTensors, pad_id: int, batch_size: int) -> torch.Tensor:
    """Sentence embeddings of every row (dropout off), computed in length-sorted batches."""
    model.eval()
    order = sorted(range(len(data)), key=lambda i: len(data.token_ids[i]))
    pooled = torch.zeros((len(data), model.head.in_features))
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            pooled[rows] = model.pooled(*pad_batch([data.token_ids[i] for i in rows], pad_id))
    return pooled


def _fit_head(model: MiniLMClassifier, data: ExampleTensors, pad_id: int, batch_size: int, *, l2: float) -> None:
    """Linear probe: fit the head by L-BFGS on the frozen encoder's embeddings, with the training loss."""
    features = _pooled(model, data, pad_id, batch_size)
    rows = list(range(len(data)))
    total_weight = data.weights.sum()
    fit_linear_probe(model.head, lambda: weighted_loss_sum(model.head(features), data, rows) / total_weight, l2=l2)


def fit_linear_probe(head: torch.nn.Linear, loss: Callable[[], torch.Tensor], *, l2: float) -> None:
    """Fit ``head`` by L-BFGS to minimise ``loss`` (computed through it on fixed features) plus l2 times its squared
    weights: a convex fit, converged within PROBE_MAX_ITERATIONS."""
    optimizer = torch.optim.LBFGS(
        head.parameters(), lr=1.0, max_iter=PROBE_MAX_ITERATIONS, line_search_fn="strong_wolfe"
    )

    def closure() -> float:
        optimizer.zero_grad()
        total = loss() + l2 * head.weight.square().sum()
        total.backward()  # type: ignore[no-untyped-call]
        return float(total.detach())

    optimizer.step(closure)  # type: ignore[no-untyped-call]


def _fine_tune(
    model: MiniLMClassifier,
    train_data: ExampleTensors,
    validation_data: ExampleTensors,
    pad_id: int,
    config: TrainConfig,
    progress: Progress | None,
) -> _Run:
    """AdamW on LoRA and head; stops after `patience` epochs without a better validation loss."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate)
    generator = torch.Generator().manual_seed(config.seed)
    total_steps = config.epochs * batches_per_epoch(len(train_data), config.batch_size)
    best_loss = float("inf")
    if len(validation_data):
        best_loss, _ = _evaluate(model, validation_data, pad_id, config.batch_size)
    best_state, best_epoch, bad_epochs, done = trainable_state(model), 0, 0, 0
    epoch, train_loss = 0, 0.0
    for epoch in range(1, config.epochs + 1):
        model.train()
        losses: list[float] = []
        for rows in bucketed_batches(train_data.token_ids, config.batch_size, generator):
            logits = model(*pad_batch([train_data.token_ids[i] for i in rows], pad_id))
            loss = weighted_loss_sum(logits, train_data, rows) / train_data.weights[rows].sum()
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
        validation_loss, _ = _evaluate(model, validation_data, pad_id, config.batch_size)
        if validation_loss < best_loss - MIN_IMPROVEMENT:
            best_loss, best_epoch, bad_epochs = validation_loss, epoch, 0
            best_state = trainable_state(model)
        else:
            bad_epochs += 1
            if bad_epochs >= config.patience:
                break
    if progress is not None:
        progress(total_steps, total_steps)
    model.load_state_dict(best_state, strict=False)
    return _Run(epochs_run=epoch, best_epoch=best_epoch, train_loss=train_loss)


def _evaluate(
    model: MiniLMClassifier, data: ExampleTensors, pad_id: int, batch_size: int
) -> tuple[float, torch.Tensor]:
    """The weighted loss over all rows, and the logits of each row."""
    with torch.no_grad():
        logits = model.head(_pooled(model, data, pad_id, batch_size))
        loss = weighted_loss_sum(logits, data, range(len(data))) / data.weights.sum()
    return loss.item(), logits


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of what training changes (LoRA matrices and head), to restore the best epoch."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
