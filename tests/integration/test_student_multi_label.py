"""The multi-label LoRA student on real data: packaged MiniLM, the GoEmotions sample in bench/data (Ekman labels)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from service.backends.student_lora import LoraStudent, LoraTrainer
from service.datasets import read_labeled
from service.pipeline import label_sets
from service.ports import TrainConfig, TrainExample
from tests.integration.test_student import run_export_check

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[2] / "bench" / "data" / "goemotions_ekman.jsonl"
LABELS = ("anger", "disgust", "fear", "joy", "sadness", "surprise")


@pytest.fixture(scope="module")
def emotions() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """500 items to train on and 300 held out, labels as canonical set names."""
    pairs = [
        (text, label_sets.canonical(label, LABELS))
        for text, label in read_labeled(DATA, text_field="text", label_field="labels")
    ]
    return pairs[:500], pairs[500:800]


@pytest.fixture(scope="module")
def trained(
    emotions: tuple[list[tuple[str, str]], list[tuple[str, str]]], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    train, _ = emotions
    result = LoraTrainer().train(
        [TrainExample(text, label) for text, label in train],
        LABELS,
        tmp_path_factory.mktemp("students") / "v1",
        TrainConfig(epochs=3, seed=7),
        kind="multi_label",
    )
    return result.path


def test_multi_label_student_predicts_label_sets_better_than_the_commonest_set(
    trained: Path, emotions: tuple[list[tuple[str, str]], list[tuple[str, str]]]
) -> None:
    """Its columns are the 64 label sets, summing to one; its likeliest set beats always answering the training
    data's commonest set (["joy"]) on held-out exact-set accuracy and macro-F1; meta.json records the kind and each
    label's validation cut."""
    train, held_out = emotions
    student = LoraStudent.load(trained)
    names = label_sets.set_names(LABELS)
    assert student.columns == names
    probs = student.predict_proba([text for text, _ in held_out])
    assert probs.shape == (len(held_out), 64)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    truth = [label for _, label in held_out]
    sets = [label for _, label in train]
    commonest = max(set(sets), key=sets.count)
    report = label_sets.set_report(y_true=truth, y_pred=[names[i] for i in probs.argmax(axis=1)], labels=LABELS)
    constant = label_sets.set_report(y_true=truth, y_pred=[commonest] * len(truth), labels=LABELS)
    assert report["accuracy"] > constant["accuracy"], (report, constant)
    assert report["macro_f1"] > constant["macro_f1"] + 0.1, (report, constant)
    meta = json.loads((trained / "meta.json").read_text())
    assert meta["kind"] == "multi_label" and len(meta["thresholds"]) == len(LABELS)
    assert all(0.0 < cut < 1.0 for cut in meta["thresholds"])
    assert "validation_micro_f1" in meta["metrics"]
    assert student.predict_proba([]).shape == (0, 64)


@pytest.mark.parametrize(("fmt", "tolerance"), [("hf", 1e-4), ("onnx-float32", 1e-4)])
def test_multi_label_export_gives_each_label_its_sigmoid_in_plain_transformers(
    trained: Path,
    emotions: tuple[list[tuple[str, str]], list[tuple[str, str]]],
    tmp_path: Path,
    fmt: str,
    tolerance: float,
) -> None:
    """The export is a multi_label_classification model: in a process that imports nothing from this project, the
    pipeline (or onnxruntime with a sigmoid) gives each label's score, and those are the service's per-label
    probabilities, so "over 0.5" picks the service's label set."""
    from service.backends.student_export import export_student

    texts = [text for text, _ in emotions[1][:40]]
    expected = label_sets.presence(LoraStudent.load(trained).predict_proba(texts))
    export_student(trained, tmp_path / fmt, fmt=fmt.split("-")[0], card="# card\n")  # type: ignore[arg-type]
    if fmt == "hf":
        assert json.loads((tmp_path / fmt / "config.json").read_text())["problem_type"] == "multi_label_classification"
    labels, probs = run_export_check(fmt, tmp_path / fmt, texts)
    assert labels == list(LABELS)
    assert ((probs > 0.5) == (expected > 0.5)).all(), "the same label sets"
    np.testing.assert_allclose(probs, expected, atol=tolerance)
