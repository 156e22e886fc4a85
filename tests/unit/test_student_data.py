from __future__ import annotations

import math

import pytest
import torch

from service.backends.student_data import (
    ExampleTensors,
    batches_per_epoch,
    bucketed_batches,
    stratified_split,
    training_data_sha256,
    validate_examples,
    weighted_loss_sum,
)
from service.ports import TrainExample

LABELS = ("ham", "spam")


def test_split_is_stratified_seeded_and_disjoint() -> None:
    examples = [TrainExample(f"h{i}", "ham") for i in range(80)] + [TrainExample(f"s{i}", "spam") for i in range(20)]
    train, validation = stratified_split(examples, LABELS, 0.2, seed=1)
    assert sorted(e.label for e in validation).count("spam") == 4
    assert len(validation) == 20 and len(train) == 80
    assert not {e.text for e in train} & {e.text for e in validation}
    assert stratified_split(examples, LABELS, 0.2, seed=1) == (train, validation)
    assert stratified_split(examples, LABELS, 0.2, seed=2)[1] != validation
    assert stratified_split(examples[:5], LABELS, 0.2, seed=1) == (examples[:5], [])


@pytest.mark.parametrize(("n_rows", "batch_size"), [(1, 32), (31, 8), (256, 32), (300, 32), (1000, 64)])
def test_bucketed_batches_cover_every_row_once_with_similar_lengths(n_rows: int, batch_size: int) -> None:
    token_ids = [[0] * (1 + (i * 7919) % 100) for i in range(n_rows)]
    batches = bucketed_batches(token_ids, batch_size, torch.Generator().manual_seed(0))
    assert sorted(i for batch in batches for i in batch) == list(range(n_rows))
    assert len(batches) == batches_per_epoch(n_rows, batch_size)
    assert all(len(batch) <= batch_size for batch in batches)
    again = bucketed_batches(token_ids, batch_size, torch.Generator().manual_seed(0))
    assert again == batches
    if n_rows >= 256:
        spread = sum(max(len(token_ids[i]) for i in b) - min(len(token_ids[i]) for i in b) for b in batches)
        assert spread / len(batches) < 30  # random batches of these lengths would spread about 95


def test_loss_mixes_soft_targets_and_weights() -> None:
    data = ExampleTensors(
        token_ids=[[1], [1]],
        targets=torch.tensor([0, 1]),
        weights=torch.tensor([2.0, 1.0]),
        soft_targets=torch.tensor([[0.0, 0.0], [0.5, 0.5]]),
        soft_share=torch.tensor([0.0, 0.4]),
    )
    logits = torch.log(torch.tensor([[0.8, 0.2], [0.25, 0.75]]))
    expected = 2.0 * -math.log(0.8) + 0.6 * -math.log(0.75) + 0.4 * -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    assert weighted_loss_sum(logits, data, [0, 1]).item() == pytest.approx(expected, rel=1e-6)
    assert weighted_loss_sum(logits[1:], data, [1]).item() == pytest.approx(expected - 2.0 * -math.log(0.8), rel=1e-6)


def test_data_hash_sees_every_field_and_the_order() -> None:
    examples = [TrainExample("a", "ham"), TrainExample("b", "spam", weight=2.0, soft_target=(0.1, 0.9))]
    base = training_data_sha256(examples, LABELS)
    assert base == training_data_sha256(list(examples), LABELS)
    assert base != training_data_sha256(examples[::-1], LABELS)
    assert base != training_data_sha256([examples[0], TrainExample("b", "spam", weight=2.0)], LABELS)
    assert base != training_data_sha256(examples, ("ham", "spam", "other"))


@pytest.mark.parametrize(
    ("examples", "labels"),
    [
        ([TrainExample("a", "ham")], ("ham",)),
        ([], LABELS),
        ([TrainExample("a", "eggs")], LABELS),
        ([TrainExample("a", "ham", weight=0.0)], LABELS),
        ([TrainExample("a", "ham", soft_target=(1.0,))], LABELS),
    ],
)
def test_bad_examples_are_rejected(examples: list[TrainExample], labels: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        validate_examples(examples, labels, "single_label")


@pytest.mark.parametrize(
    "examples",
    [
        [TrainExample("a", "ham")],
        [TrainExample("a", '["spam", "ham"]')],
        [TrainExample("a", '["ham"]', soft_target=(0.5, 0.5))],
    ],
)
def test_multi_label_examples_must_name_canonical_label_sets(examples: list[TrainExample]) -> None:
    """A multi-label example's label is a label set's canonical name (task order), its soft target one probability
    per set."""
    validate_examples([TrainExample("a", '["ham", "spam"]', soft_target=(0.1, 0.2, 0.3, 0.4))], LABELS, "multi_label")
    with pytest.raises(ValueError):
        validate_examples(examples, LABELS, "multi_label")


def test_multi_label_loss_sums_each_labels_binary_cross_entropy() -> None:
    """(n, k) presence targets: every label's present/absent cross-entropy, the teacher's presence as soft target."""
    data = ExampleTensors(
        token_ids=[[1]],
        targets=torch.tensor([[1.0, 0.0]]),
        weights=torch.tensor([2.0]),
        soft_targets=torch.tensor([[0.5, 0.5]]),
        soft_share=torch.tensor([0.25]),
    )
    logits = torch.logit(torch.tensor([[0.8, 0.3]]))
    hard = -math.log(0.8) - math.log(0.7)
    soft = -(0.5 * math.log(0.8) + 0.5 * math.log(0.2)) - (0.5 * math.log(0.3) + 0.5 * math.log(0.7))
    assert weighted_loss_sum(logits, data, [0]).item() == pytest.approx(2.0 * (0.75 * hard + 0.25 * soft), rel=1e-5)
