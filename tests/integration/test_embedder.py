"""The sentence embedder on the packaged all-MiniLM-L6-v2."""

from __future__ import annotations

import numpy as np
import pytest

from service.backends.embedder_st import SentenceEmbedder

pytestmark = pytest.mark.integration

TEXTS = [
    "Free entry in a weekly competition to win cup final tickets, text WIN now",
    "ok see you at home later",
    "Congratulations! You have won a prize, call now to claim",
    "are we still meeting for lunch tomorrow?",
    "hi",
]


@pytest.fixture(scope="module")
def embedder() -> SentenceEmbedder:
    return SentenceEmbedder(batch_size=2)


def test_embeddings_are_unit_float64_in_input_order(embedder: SentenceEmbedder) -> None:
    vectors = embedder.embed(TEXTS)
    assert vectors.shape == (5, 384) and vectors.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-12)
    one_by_one = np.vstack([embedder.embed([text]) for text in TEXTS])
    np.testing.assert_allclose(vectors, one_by_one, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)
    assert embedder.model_name == "sentence-transformers/all-MiniLM-L6-v2"


def test_similar_messages_are_nearer(embedder: SentenceEmbedder) -> None:
    vectors = embedder.embed(TEXTS)
    similarity = vectors @ vectors.T
    assert similarity[0, 2] > similarity[0, 1]
    assert similarity[1, 3] > similarity[1, 2]


def test_bfloat16_embeddings_keep_the_neighbours(embedder: SentenceEmbedder) -> None:
    full = embedder.embed(TEXTS)
    low = SentenceEmbedder(precision="bfloat16").embed(TEXTS)
    assert low.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(low, axis=1), 1.0, atol=1e-12)
    assert np.min(np.sum(full * low, axis=1)) > 0.999
    np.testing.assert_array_equal(
        np.argsort(-(low @ low.T), axis=1)[:, :3], np.argsort(-(full @ full.T), axis=1)[:, :3]
    )


def test_int8_embeddings_are_refused() -> None:
    with pytest.raises(ValueError, match="neighbours"):
        SentenceEmbedder(precision="int8")
