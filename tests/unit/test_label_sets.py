"""Multi-label items as a choice among label sets (pipeline/label_sets.py) and the one-vs-rest probe."""

import json
from datetime import UTC, datetime

import numpy as np
import pytest

from service.pipeline import kinds, label_sets
from service.pipeline.agreement import label_votes, pairwise_kappa
from service.pipeline.probe import ProbeInput, SetProbe, fit_set_probe, probe_from_json
from service.pipeline.render import default_prompts_dir, render_prompt
from service.pipeline.task_report import NO_LABEL, Judged, set_confusion
from service.ports import Example, LabelDef, TaskDef

LABELS = ("anger", "joy", "sadness")
TASK = TaskDef(
    "emotions",
    tuple(LabelDef(name) for name in LABELS),
    "Which emotions?",
    template="multi_label/chatml",
    kind="multi_label",
)


def test_a_set_is_named_by_its_members_in_the_tasks_order() -> None:
    assert label_sets.set_name(["sadness", "anger"], LABELS) == '["anger", "sadness"]'
    assert label_sets.set_name([], LABELS) == "[]"
    assert label_sets.canonical('["joy","anger"]', LABELS) == '["anger", "joy"]'
    assert label_sets.canonical(["joy"], LABELS) == '["joy"]'
    assert label_sets.members('["sadness", "joy"]', LABELS) == ("joy", "sadness")
    with pytest.raises(ValueError, match=r"unknown label.*'fear'"):
        label_sets.set_name(["fear"], LABELS)
    with pytest.raises(ValueError, match="twice"):
        label_sets.set_name(["joy", "joy"], LABELS)
    with pytest.raises(ValueError, match="not a JSON list"):
        label_sets.canonical("joy", LABELS)


def test_columns_are_every_subset_with_label_i_on_bit_i() -> None:
    names = label_sets.set_names(LABELS)
    assert len(names) == 8 and len(set(names)) == 8
    assert names[0] == "[]" and names[0b101] == '["anger", "sadness"]'
    assert kinds.columns(TASK.kind, TASK.label_names) == names
    assert label_sets.label_count(8) == 3
    with pytest.raises(ValueError):
        label_sets.label_count(6)
    with pytest.raises(ValueError, match="1 to 8 labels"):
        label_sets.set_names([f"l{i}" for i in range(9)])


def test_set_probabilities_are_independent_labels_and_give_back_their_marginals() -> None:
    present = np.array([[0.9, 0.2, 0.6], [0.1, 0.1, 0.1], [0.5001, 0.99, 0.4999]])
    sets = label_sets.set_probs(present)
    assert sets.shape == (3, 8)
    np.testing.assert_allclose(sets.sum(axis=1), 1.0)
    np.testing.assert_allclose(label_sets.presence(sets), present, atol=1e-9)
    # The likeliest set holds exactly the labels over one half, with the product of each call's probability.
    top, confidence = kinds.machine_labels(probs=sets, kind="multi_label")
    assert top.tolist() == [0b101, 0, 0b011]
    assert confidence[0] == pytest.approx(0.9 * 0.8 * 0.6)


def test_teacher_answers_become_presence_then_sets() -> None:
    # Per label (yes, no) log-likelihoods: anger yes is e^2 times likelier than no, joy no, sadness even.
    logliks = np.array([[-1.0, -3.0, -4.0, -1.0, -2.0, -2.0]])
    present = label_sets.presence_from_scores(logliks)
    np.testing.assert_allclose(present, [[1 / (1 + np.exp(-2)), 1 / (1 + np.exp(3)), 0.5]])
    np.testing.assert_allclose(kinds.column_probs(TASK, logliks), label_sets.set_probs(present))
    assert kinds.continuations(TASK)[:2] == ("\nanger: yes", "\nanger: no")
    with pytest.raises(ValueError, match=r"\(n, 2k\)"):
        label_sets.presence_from_scores(np.zeros((1, 5)))


def test_micro_and_macro_f1_count_labels_not_sets() -> None:
    gold = np.array([0b011, 0b000, 0b100])
    predicted = np.array([0b001, 0b000, 0b110])
    # Hits: anger (item 0), sadness (item 2): 2; claimed 3, actual 3.
    assert label_sets.micro_f1(predicted, gold, 3) == pytest.approx(4 / 6)
    # anger 1.0, joy: 0 hits of 2 calls -> 0, sadness 1.0.
    assert label_sets.macro_f1(predicted, gold, 3) == pytest.approx(2 / 3)
    assert label_sets.micro_f1(np.zeros(2, dtype=np.int64), np.zeros(2, dtype=np.int64), 3) == 1.0


def test_the_set_probe_learns_each_label_and_reads_sets() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8))
    truth = (x[:, 0] > 0).astype(np.int64) | ((x[:, 1] > 0).astype(np.int64) << 1)  # sadness never present
    inputs = ProbeInput.of(x, None)
    probe = fit_set_probe(inputs=inputs.take(np.arange(150)), labels=truth[:150], n_labels=8)
    assert isinstance(probe, SetProbe)
    probs = probe.predict(inputs.take(np.arange(150, 200)))
    assert probs.shape == (50, 8)
    assert (probs.argmax(axis=1) == truth[150:]).mean() >= 0.8
    assert label_sets.presence(probs)[:, 2].max() < 0.05
    again = probe_from_json(json.loads(json.dumps(probe.to_json())))
    np.testing.assert_allclose(again.predict(inputs.take(np.arange(5))), probe.predict(inputs.take(np.arange(5))))
    assert fit_set_probe(inputs=inputs.take(np.arange(5)), labels=truth[:5], n_labels=8) is None


def test_the_multi_label_prompt_shows_each_examples_answers_and_ends_at_the_first_answer() -> None:
    examples = [Example("so angry and sad", '["sadness", "anger"]'), Example("nothing here", "[]")]
    prompt = render_prompt(TASK, "what a day", examples, TASK.template, default_prompts_dir()).prompt
    first, second = prompt.split("Text: so angry and sad")[1], prompt.split("Text: nothing here")[1]
    assert "anger: yes\njoy: no\nsadness: yes\n" in first.split("<|im_start|>user")[0]
    assert "anger: no\njoy: no\nsadness: no\n" in second.split("<|im_start|>user")[0]
    assert prompt.endswith("Text: what a day<|im_end|>\n<|im_start|>assistant")


def test_the_multi_label_confusion_counts_shared_missed_added_and_swapped_labels() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)

    def judged(human: list[str], machine: list[str]) -> Judged:
        return Judged(json.dumps(human), json.dumps(machine), "teacher", None, False, True, False, when)

    items = [
        judged(["anger", "sadness"], ["anger", "sadness"]),  # both right: two diagonal cells
        judged(["joy"], []),  # joy missed
        judged([], ["anger"]),  # anger added
        judged(["sadness"], ["anger"]),  # sadness read as anger
        judged([], []),
        judged(["fear"], []),  # not a label of the task: left out
    ]
    matrix = set_confusion(items, labels=LABELS)
    rows = dict(zip([*LABELS, NO_LABEL], matrix, strict=True))
    assert rows["anger"] == [1, 0, 0, 0]
    assert rows["joy"] == [0, 0, 0, 1]
    assert rows["sadness"] == [1, 0, 1, 0]
    assert rows[NO_LABEL] == [1, 0, 0, 1]


def test_agreement_on_each_label_reads_sets_as_yes_or_no() -> None:
    votes = {
        1: {"ann": '["anger", "joy"]', "bob": '["anger"]'},
        2: {"ann": "[]", "bob": "[]"},
        3: {"ann": '["sadness"]', "bob": '["sadness", "joy"]'},
        4: {"ann": '["anger"]', "bob": '["anger"]'},
    }
    anger = label_votes(votes=votes, label="anger", labels=LABELS)
    assert anger == {
        1: {"ann": "yes", "bob": "yes"},
        2: {"ann": "no", "bob": "no"},
        3: {"ann": "no", "bob": "no"},
        4: {"ann": "yes", "bob": "yes"},
    }
    assert pairwise_kappa(votes=anger)[0].kappa == 1.0
    joy = pairwise_kappa(votes=label_votes(votes=votes, label="joy", labels=LABELS))[0]
    assert joy.observed == 0.5 and joy.kappa is not None and joy.kappa < 0.5
    # Whole sets: only items 2 and 4 agree.
    assert pairwise_kappa(votes=votes)[0].observed == 0.5
