"""The lead's dashboard as tables: each figure on the page is one named table (a list of rows), drawn as a plot or
shown as HTML and downloadable as CSV or JSON, so what a lead sees is exactly the data they can take away."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy.orm import Session

from service.pipeline import task_report
from service.pipeline.task_report import Judged
from service.store import answers, consistency, dashboard, guidelines, history, items, students, usage
from service.store.tasks import answer_values, label_names, label_values, score_columns
from service.tables import Task

Cell = str | int | float | bool | None
Table = list[dict[str, Cell]]
V = TypeVar("V")

STATES = ("queued", "accepted", "review", "resolved")
"""The order of the progress bar: waiting for the machine, accepted, waiting for a human, labeled by a human."""


class Reads:
    """The task's rows the figures read, with the reads several of them share (the human labels and the decisions
    of the items they label; every reviewed item with what the machine said; the uniform reviews; every active
    answer; when each reviewer answered) made at most once. ``kept(name, load)`` may serve a shared read from
    elsewhere: the route keeps them per task state, so a page and the plots it loads next make one pass."""

    def __init__(self, session: Session, task: Task, *, kept: Callable[[str, Callable[[], Any]], Any] | None = None):
        self.session, self.task = session, task
        self._kept = kept or (lambda name, load: load())
        self._done: dict[str, Any] = {}

    def _once(self, name: str, load: Callable[[], V]) -> V:
        if name not in self._done:
            self._done[name] = self._kept(name, load)
        return cast(V, self._done[name])

    def read(self) -> history.Reviewed:
        return self._once("reviewed rows", lambda: history.reviewed(self.session, task_id=self.task.id))

    def reviewed(self) -> list[Judged]:
        return self._once("reviewed", lambda: dashboard.reviewed_items(self.read(), labels=score_columns(self.task)))

    def drawn(self) -> history.Reviewed:
        """The human labels and only the decisions that drew their items at random: the page needs no more."""
        return self._once("drawn rows", lambda: history.reviewed(self.session, task_id=self.task.id, drawn_only=True))

    def reviewed_uniform(self) -> list[Judged]:
        """The reviewed items drawn at random, each with the decision that drew it (the accuracy table, and the
        audits of the timeline)."""
        return self._once(
            "reviewed uniform", lambda: dashboard.reviewed_items(self.drawn(), labels=score_columns(self.task))
        )

    def uniform(self) -> list[history.UniformReview]:
        return self._once(
            "uniform", lambda: history.uniform_reviews(self.session, task_id=self.task.id, read=self.drawn())
        )

    def given(self) -> answers.Answers:
        return self._votes()[0]

    def final_sources(self) -> dict[str, int]:
        """Items per source of their final label (the sources table, and the cost report's labeled items)."""
        return self._once("final sources", lambda: usage.final_sources(self.session, task_id=self.task.id))

    def times(self) -> dict[str, list[datetime]]:
        """When each reviewer answered (the cost report and the reviewers' throughput)."""
        return self._votes()[1]

    def _votes(self) -> tuple[answers.Answers, dict[str, list[datetime]]]:
        return self._once("answers", lambda: answers.with_times(self.session, task=self.task))


def _at(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def states(reads: Reads) -> Table:
    session, task = reads.session, reads.task
    counts = items.counts_by_state(session, task_id=task.id)
    order = [*STATES, *sorted(set(counts) - set(STATES))]
    return [{"state": state, "items": counts.get(state, 0)} for state in order]


def sources(reads: Reads) -> Table:
    """Items per source of their final label."""
    counts = reads.final_sources()
    return [{"source": source, "items": count} for source, count in sorted(counts.items())]


def timeline(reads: Reads) -> Table:
    """Three series: coverage (cumulative share of routing decisions that accepted), the certified error bound at
    each look (empty where a look certified nothing), and the realised error of audited labels (cumulative)."""
    session, task = reads.session, reads.task
    rows: Table = [
        {"series": "coverage", "at": _at(p.at), "value": p.accepted / p.routed, "n": p.routed}
        for p in dashboard.routing_timeline(session, task_id=task.id)
    ]
    rows += [
        {"series": "error_bound", "at": _at(look.looked_at), "value": look.error_bound, "n": look.certified_on}
        for look in dashboard.looks(session, task_id=task.id)
        if look.looked_at is not None
    ]
    rows += [
        {"series": "audit_error", "at": _at(p.at), "value": p.error, "n": p.audits}
        for p in task_report.audit_timeline(reads.reviewed_uniform())  # audits are uniform draws
    ]
    return rows


def confusion(reads: Reads) -> Table:
    """Reviewed items by the human's label and the machine's; a multi-label task's by the labels in their sets
    (task_report.set_confusion), a spans task's by the labels of its spans (task_report.span_confusion)."""
    names = label_names(reads.task)
    if reads.task.kind == "multi_label":
        labels = [*names, task_report.NO_LABEL]
        matrix = task_report.set_confusion(reads.reviewed(), labels=names)
    elif reads.task.kind == "spans":
        labels = [*names, task_report.NO_SPAN]
        matrix = task_report.span_confusion(reads.reviewed(), labels=names)
    else:
        labels = label_values(reads.task)
        matrix = task_report.confusion(reads.reviewed(), labels=labels)
    return [
        {"human": human, "machine": machine, "items": matrix[i][j]}
        for i, human in enumerate(labels)
        for j, machine in enumerate(labels)
    ]


def accuracy(reads: Reads) -> Table:
    """Each source's accuracy on uniform reviews, with its interval at level 1 - delta."""
    meaning = dict(task_report.SOURCES)
    return [
        {
            "source": row.source,
            "items": row.items,
            "correct": row.correct,
            "accuracy": row.accuracy,
            "lower": row.lower,
            "upper": row.upper,
            "what": meaning[row.source],
        }
        for row in task_report.source_accuracy(
            reads.reviewed_uniform(), delta=reads.task.delta, calibrated=reads.task.kind != "spans"
        )
    ]


def reviewers(reads: Reads) -> Table:
    task, given = reads.task, reads.given()
    rows = task_report.reviewer_rows(
        votes=given.votes,
        answered_at=reads.times(),
        gold=given.gold,
        model=given.reviewer_model(answer_values(task)),
    )
    return [dict(vars(row)) for row in rows]


def student_versions(reads: Reads) -> Table:
    rows: Table = []
    for row in students.list_versions(reads.session, task_id=reads.task.id):
        metrics = row.metrics
        student, teacher = metrics.get("student", {}), metrics.get("teacher", {})
        rows.append(
            {
                "version": row.version,
                "promoted": row.promoted,
                "trained_at": _at(row.created_at),
                "gold_examples": metrics.get("gold_examples"),
                "accuracy": student.get("accuracy"),
                "macro_f1": student.get("macro_f1"),
                "teacher_macro_f1": teacher.get("macro_f1"),
                "threshold": metrics.get("threshold"),
                "threshold_error_bound": metrics.get("threshold_error_bound"),
                "gate_passed": metrics.get("gate_passed"),
            }
        )
    return rows


def consistency_pairs(reads: Reads) -> Table:
    """Near-identical items whose final labels differ, not yet sent to adjudication (store.consistency)."""
    return [
        {
            "pair_id": found.pair.id,
            "cosine": found.pair.cosine,
            "first_item_id": found.first.id,
            "first_text": found.first.text,
            "first_label": found.first_label,
            "second_item_id": found.second.id,
            "second_text": found.second.text,
            "second_label": found.second_label,
        }
        for found in consistency.open_pairs(reads.session, task=reads.task)
    ]


def guideline_versions(reads: Reads) -> Table:
    """Each guidelines version with the answers given under it: how many, how many of the gold items were answered
    right, and how often an answer matched the other answers on the same item."""
    session, task, given = reads.session, reads.task, reads.given()
    tally: dict[int | None, list[int]] = {}
    for item_id, on_item in given.votes.items():
        for reviewer, label in on_item.items():
            row = tally.setdefault(given.versions[(item_id, reviewer)], [0, 0, 0, 0, 0])
            row[0] += 1
            if item_id in given.gold:
                row[1] += 1
                row[2] += int(label == given.gold[item_id])
            row[3] += len(on_item) - 1
            row[4] += sum(other == label for name, other in on_item.items() if name != reviewer)
    rows: Table = []
    for guide in guidelines.versions(session, task=task):
        answered, gold, right, compared, agreed = tally.get(guide.version, [0, 0, 0, 0, 0])
        rows.append(
            {
                "version": guide.version,
                "author": guide.author,
                "written_at": _at(guide.created_at),
                "answers": answered,
                "gold_answers": gold,
                "gold_accuracy": right / gold if gold else None,
                "agreement": agreed / compared if compared else None,
            }
        )
    return rows


TABLES: dict[str, Callable[[Reads], Table]] = {
    "states": states,
    "sources": sources,
    "timeline": timeline,
    "confusion": confusion,
    "accuracy": accuracy,
    "reviewers": reviewers,
    "students": student_versions,
    "consistency": consistency_pairs,
    "guidelines": guideline_versions,
}
