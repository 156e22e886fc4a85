from service.formats.model_card import model_card

COMMON = {
    "task": "news",
    "kind": "single_label",
    "version": "v2",
    "labels": ["sport", "world"],
    "n_examples": 300,
    "trained_utc": "2026-12-01T10:00:00+00:00",
    "exported_utc": "2026-12-03T10:00:00+00:00",
    "epsilon": 0.05,
    "delta": 0.1,
    "max_length": 128,
}


def test_the_card_says_what_the_student_learned_from_and_what_is_certified() -> None:
    report = {"per_class": {"sport": {"precision": 0.9, "recall": 0.8, "f1": 0.85, "support": 10}}, "n": 20}
    metrics = {
        "student": {**report, "macro_f1": 0.84, "accuracy": 0.86},
        "teacher": {**report, "macro_f1": 0.6, "accuracy": 0.7},
        "threshold": 0.93,
        "threshold_error_bound": 0.041,
        "threshold_certified_on": 64,
        "train_sources": {"teacher": 250, "human": 50},
        "teacher_model": "smollm2-135m-instruct",
    }
    card = model_card(fmt="hf", metrics=metrics, **COMMON)  # type: ignore[arg-type]
    assert card.startswith("# news: student v2") and "`sport`, `world`" in card
    assert "300 labeled texts (50 human, 250 teacher labels)" in card and "smollm2-135m-instruct" in card
    assert "| sport | 0.900 | 0.800 | 0.850 | 10 |" in card and "the teacher on the same items: accuracy 0.700" in card
    assert "at least 0.9300" in card and "4.1%" in card and "64 sampled gold labels" in card
    assert 'pipeline("text-classification"' in card


def test_an_older_student_without_sources_or_certificate_says_so() -> None:
    metrics = {"threshold": 1.01, "threshold_error_bound": None}
    card = model_card(fmt="onnx", metrics=metrics, **COMMON)  # type: ignore[arg-type]
    assert "sources not recorded" in card and "Teacher it was distilled from: not recorded" in card
    assert "No gold evaluation was recorded" in card and "No threshold was certified at epsilon 0.05" in card
    assert "onnxruntime.InferenceSession" in card


def test_a_multi_label_card_says_how_its_scores_make_a_label_set() -> None:
    report = {"per_class": {"sport": {"precision": 0.9, "recall": 0.8, "f1": 0.85, "support": 10}}, "n": 20}
    metrics = {"student": {**report, "macro_f1": 0.7, "accuracy": 0.6, "micro_f1": 0.75}, "threshold": 1.01}
    card = model_card(fmt="hf", metrics=metrics, **{**COMMON, "kind": "multi_label"})  # type: ignore[arg-type]
    assert "multi_label_classification" in card and "over 0.5" in card and "top_k=None" in card
    assert "Exact-set accuracy 0.600, macro-F1 0.700, micro-F1 0.750" in card
    assert "multi_label_classification" not in model_card(fmt="hf", metrics=metrics, **COMMON)  # type: ignore[arg-type]


def test_a_spans_card_says_how_to_read_entities_and_how_they_were_scored() -> None:
    report = {"per_class": {"person": {"precision": 0.5, "recall": 0.4, "f1": 0.44, "support": 30}}, "n": 90}
    student = {**report, "macro_f1": 0.3, "accuracy": 0.7, "micro_f1": 0.35, "ece": 0.1}
    metrics = {"student": student, "threshold": 0.9, "threshold_error_bound": 0.08, "gate_metric": "micro_f1"}
    card = model_card(fmt="hf", metrics=metrics, **{**COMMON, "kind": "spans"})  # type: ignore[arg-type]
    assert 'pipeline("token-classification"' in card and 'aggregation_strategy="simple"' in card
    assert "An entity tagger" in card and "B-<label>" in card and "mean pooling" not in card
    assert "entity-level exact match" in card and "micro-F1 0.350" in card
    assert "text-classification" not in card
