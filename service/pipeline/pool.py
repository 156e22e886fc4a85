"""The labeled pool of a task: the latest label of every labeled item with its embedding, for kNN few-shot
examples, neighbour signals and the probe. Fed incrementally from the append-only label history."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from service.pipeline.kinds import probe_fitter
from service.pipeline.probe import AnyProbe, ProbeInput
from service.ports import Example, FloatArray, TaskKind

PROBE_REFIT_GROWTH = 0.1
"""The probe is refitted once the pool has grown by this share since the last fit: a fit on 20,000 labels of six
labels took 3 s here, too long to repeat for every chunk, and a few new labels barely move it."""
PROBE_MAX_ITEMS = 5000
"""Larger pools fit the probe on a fixed random subset of this many entries."""


@dataclass(frozen=True)
class PoolEntry:
    item_id: int
    text: str
    label: str
    source: str
    embedding: FloatArray


class LabeledPool:
    def __init__(self) -> None:
        self._entries: dict[int, PoolEntry] = {}
        self.last_label_id = 0
        self.unembedded: set[int] = set()
        self._arrays: tuple[FloatArray, list[Example], list[str]] | None = None
        self._probe: tuple[tuple[str, ...], int, AnyProbe | None] | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, entries: Iterable[PoolEntry], *, last_label_id: int, unembedded: Iterable[int] = ()) -> None:
        """Later entries of an item replace earlier ones (a human resolution supersedes a machine label).
        ``unembedded`` are label ids read without their item's embedding (labels imported with the items, before
        the worker embeds them): they join once it is there (``add_embedded``)."""
        for entry in entries:
            self._entries[entry.item_id] = entry
            self._arrays = None
        self.last_label_id = max(self.last_label_id, last_label_id)
        self.unembedded.update(unembedded)

    def add_embedded(self, entries: Iterable[tuple[int, PoolEntry]]) -> None:
        """(label id, entry) of labels that were waiting for their embedding; an item that has a later label
        keeps it."""
        for label_id, entry in entries:
            self.unembedded.discard(label_id)
            if entry.item_id not in self._entries:
                self._entries[entry.item_id] = entry
                self._arrays = None

    def arrays(self) -> tuple[FloatArray, list[Example], list[str]]:
        """(embeddings (n, d), examples, labels) in a stable order."""
        if self._arrays is None:
            entries = list(self._entries.values())
            embeddings = (
                np.stack([entry.embedding for entry in entries]).astype(np.float64)
                if entries
                else np.zeros((0, 0), dtype=np.float64)
            )
            self._arrays = (
                embeddings,
                [Example(entry.text, entry.label) for entry in entries],
                [entry.label for entry in entries],
            )
        return self._arrays

    def provenance(self) -> list[tuple[int, str, str]]:
        """(item id, source, label) of each entry, in the order of ``arrays``."""
        return [(entry.item_id, entry.source, entry.label) for entry in self._entries.values()]

    def probe(self, label_names: tuple[str, ...], *, kind: TaskKind = "single_label") -> AnyProbe | None:
        """The probe fitted on the pool's labels (see service.pipeline.probe) over ``label_names``, the task's score
        columns (pipeline/kinds.py), refitted when they differ or the pool has grown by PROBE_REFIT_GROWTH; None
        while the pool is too small for one."""
        size = len(self)
        cached = self._probe
        if cached is not None and cached[0] == label_names and size <= cached[1] * (1 + PROBE_REFIT_GROWTH):
            return cached[2]
        embeddings, examples, labels = self.arrays()
        index = {name: i for i, name in enumerate(label_names)}
        targets = np.array([index.get(label, -1) for label in labels], dtype=np.int64)
        keep = np.arange(size)
        if size > PROBE_MAX_ITEMS:
            keep = np.random.default_rng(0).choice(size, PROBE_MAX_ITEMS, replace=False)
        inputs = ProbeInput.of(embeddings[keep], [examples[i].text for i in keep])
        fitted = probe_fitter(kind)(inputs=inputs, labels=targets[keep], n_labels=len(label_names))
        self._probe = (label_names, size, fitted)
        return fitted
