"""The dashboard's plots, drawn on the server as SVG with matplotlib: the same library the benchmarks plot with, no
JavaScript on the page, and an SVG stays sharp at any zoom and small with text kept as text. Each function takes
plain values and returns the SVG document. Figures are built with the object API (no pyplot state), so requests
can draw at the same time."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime

from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure

BLUE, ORANGE, GREEN, GREY = "#1f6feb", "#d9822b", "#2da44e", "#8c959f"


def _days(times: Sequence[datetime]) -> list[float]:
    """Times as matplotlib's date numbers."""
    return [float(day) for day in date2num(list(times))]


def _svg(figure: Figure) -> str:
    import matplotlib

    buffer = io.StringIO()
    # Text stays text (a tenth of the size of glyphs drawn as paths), and ids are stable from one draw to the next.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "understudy"}):
        figure.savefig(buffer, format="svg", bbox_inches="tight")
    return buffer.getvalue()


def timeline(
    *,
    routed_at: Sequence[datetime],
    coverage: Sequence[float],
    bound_at: Sequence[datetime],
    bound: Sequence[float | None],
    audit_at: Sequence[datetime],
    audit_error: Sequence[float],
    epsilon: float,
) -> str:
    """Coverage, the certified bound (a step at each look; a gap where a look certified nothing) and the realised
    error of audited labels over time, against epsilon."""
    figure = Figure(figsize=(7.5, 3.0))
    axes = figure.subplots()
    if routed_at:
        axes.plot(_days(routed_at), [100 * c for c in coverage], color=BLUE, label="coverage (share accepted)")
    if bound_at:
        values = [float("nan") if b is None else 100 * b for b in bound]
        axes.step(_days(bound_at), values, where="post", color=ORANGE, label="certified error bound", marker="o")
    if audit_at:
        axes.plot(_days(audit_at), [100 * e for e in audit_error], color=GREEN, label="realised audit error")
    locator = AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    axes.axhline(100 * epsilon, color=GREY, linestyle="--", linewidth=1, label=f"epsilon {epsilon:g}")
    axes.set_ylabel("%")
    axes.set_ylim(0, 100)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize=8, frameon=False)
    return _svg(figure)


def confusion(*, matrix: Sequence[Sequence[int]], labels: Sequence[str]) -> str:
    """Reviewed items: the human's label down, the machine's across, counts in the cells."""
    size = 1.2 + 0.55 * len(labels)
    figure = Figure(figsize=(size + 1.0, size))
    axes = figure.subplots()
    axes.imshow([list(row) for row in matrix], cmap="Blues")
    top = max((max(row) for row in matrix), default=0)
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            axes.text(j, i, str(count), ha="center", va="center", color="white" if count > top / 2 else "black")
    axes.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("machine")
    axes.set_ylabel("human")
    return _svg(figure)


def source_accuracy(
    *,
    sources: Sequence[str],
    accuracy: Sequence[float | None],
    lower: Sequence[float | None],
    upper: Sequence[float | None],
) -> str:
    """Each source's accuracy on uniform reviews, with its interval; sources with no reviews are shown empty."""
    figure = Figure(figsize=(6.0, 0.5 + 0.45 * len(sources)))
    axes = figure.subplots()
    for row, (acc, low, high) in enumerate(zip(accuracy, lower, upper, strict=True)):
        if acc is None or low is None or high is None:
            axes.text(0.5, row, "no uniform reviews yet", va="center", color=GREY)
            continue
        axes.barh(row, 100 * acc, color=BLUE, height=0.5)
        axes.errorbar(100 * acc, row, xerr=[[100 * (acc - low)], [100 * (high - acc)]], color="black", capsize=3)
    axes.set_yticks(range(len(sources)), list(sources))
    axes.invert_yaxis()
    axes.set_xlim(0, 100)
    axes.set_xlabel("accuracy on uniform reviews, %")
    axes.grid(axis="x", alpha=0.3)
    return _svg(figure)
