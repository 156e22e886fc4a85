"""The words of a text as probe features: hashed word unigrams and bigrams, sublinear counts, unit length.

Sentence embeddings blur the few words that decide some tasks: a question's class is mostly its opening
("how many", "who", "where"), a request's intent a verb or two. Read beside MiniLM, the words lift the probe on
TREC with 300 labels from 74% to 79% accuracy, and the 30% of questions it is surest of from 92% to 98% right;
on SMS Spam and movie reviews they change little (bench/README.md). Hashing (CRC-32, stable across processes,
unlike Python's ``hash``) needs no vocabulary, so a probe fitted on one chunk reads any other text.
"""

from __future__ import annotations

import itertools
import re
import zlib
from collections.abc import Sequence

import numpy as np
from scipy import sparse

BITS = 18
"""Feature space of 2^18 buckets: few collisions among the words of a task's labeled items."""
WIDTH = 1 << BITS
_TOKEN = re.compile(r"\w+")


def _bucket(gram: str) -> int:
    return zlib.crc32(gram.encode("utf-8")) & (WIDTH - 1)


def hashed_words(texts: Sequence[str]) -> sparse.csr_matrix:
    """(n, WIDTH) features of n texts: 1 + log(count) of each lowercased word and word pair, rows of unit length
    (a text without words is a zero row)."""
    indptr: list[int] = [0]
    columns: list[int] = []
    values: list[float] = []
    for text in texts:
        words = _TOKEN.findall(text.lower())
        counts: dict[int, int] = {}
        for gram in [*words, *(f"{a} {b}" for a, b in itertools.pairwise(words))]:
            bucket = _bucket(gram)
            counts[bucket] = counts.get(bucket, 0) + 1
        weights = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))
        if weights.size:
            weights /= np.linalg.norm(weights)
        columns.extend(counts)
        values.extend(weights.tolist())
        indptr.append(len(columns))
    return sparse.csr_matrix(
        (np.asarray(values, dtype=np.float64), np.asarray(columns, dtype=np.int64), np.asarray(indptr)),
        shape=(len(texts), WIDTH),
    )
