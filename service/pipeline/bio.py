"""BIO tags between character spans and a tokenizer's tokens, for the token-classification student.

Every sub-word token inside a span is tagged (``B-label`` on the first, ``I-label`` on the rest), so that decoding
here and transformers' ``aggregation_strategy="simple"`` read the same spans from the same tags: a run starts at a
``B-`` tag, or at an ``I-`` tag that does not continue a run of its label, as seqeval's default scheme reads it.
"""

from __future__ import annotations

from collections.abc import Sequence

from service.pipeline.span_sets import Span

OUTSIDE = "O"
IGNORED = -100
"""Tag of special and padding tokens, which the loss skips (PyTorch's cross-entropy ignore_index)."""


def tag_names(labels: Sequence[str]) -> tuple[str, ...]:
    """The tag vocabulary: ``O``, then ``B-label`` and ``I-label`` per label, in the task's order."""
    return (OUTSIDE, *(f"{prefix}-{label}" for label in labels for prefix in ("B", "I")))


def token_tags(offsets: Sequence[tuple[int, int]], spans: Sequence[Span], labels: Sequence[str]) -> list[int]:
    """Tag ids per token from its character ``offsets`` (``(0, 0)`` marks a special token: IGNORED). A token is in
    a span when their characters overlap."""
    index = {name: i for i, name in enumerate(tag_names(labels))}
    tags: list[int] = []
    ordered = sorted(spans)
    current = 0
    opened: Span | None = None
    for start, end in offsets:
        if start == end:
            tags.append(IGNORED)
            continue
        while current < len(ordered) and ordered[current].end <= start:
            current += 1
        span = ordered[current] if current < len(ordered) and ordered[current].start < end else None
        if span is None:
            tags.append(index[OUTSIDE])
        else:
            tags.append(index[f"{'I' if span == opened else 'B'}-{span.label}"])
        opened = span
    return tags


def decode(offsets: Sequence[tuple[int, int]], tags: Sequence[int], labels: Sequence[str]) -> list[Span]:
    """The spans that per-token tag ids spell, from the first character of a run's first token to the last of its
    last token; special tokens (offsets ``(0, 0)``) are skipped."""
    names = tag_names(labels)
    spans: list[Span] = []
    run: list[int] | None = None
    run_label = ""
    for (start, end), tag in zip(offsets, tags, strict=True):
        if start == end:
            continue
        name = names[tag]
        prefix, _, label = name.partition("-")
        if prefix == "I" and run is not None and label == run_label:
            run[1] = end
            continue
        if run is not None:
            spans.append(Span(run[0], run[1], run_label))
            run = None
        if prefix in ("B", "I"):
            run, run_label = [start, end], label
    if run is not None:
        spans.append(Span(run[0], run[1], run_label))
    return spans
