"""ORM tables. History is append-only: predictions, decisions and labels are never updated; the latest label row of
an item is its final label, so a human resolution supersedes a machine label by a new row."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from service.pipeline.route import stored_reasons


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A moment in UTC, aware on every store: SQLite keeps no offset and hands its values back naive, so they are
    written in UTC and read back as UTC, and every response and comparison sees the same kind of value."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.astimezone(UTC) if value is not None and value.tzinfo is not None else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: UtcDateTime()}


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    project: Mapped[str | None] = mapped_column(String(100), nullable=True)
    """A client key's project: it sees and changes only that project's tasks. None: every project."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(nullable=True)
    """Recorded at most once a minute per key and process (store.keys.TOUCH_EVERY)."""
    previous_hash: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    """The secret before the last rotation, valid until ``previous_valid_until`` (a grace period)."""
    previous_valid_until: Mapped[datetime | None] = mapped_column(nullable=True)


class WebSession(Base):
    """A review page login: the cookie holds a random token (stored hashed) standing for the key. It ends at logout,
    at its expiry, or when its key is revoked or expires. State-changing requests it makes carry its CSRF token."""

    __tablename__ = "web_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Task(Base):
    __tablename__ = "tasks"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    project: Mapped[str] = mapped_column(String(100), default="default", server_default="default", index=True)
    labels: Mapped[list[Any]] = mapped_column()
    instructions: Mapped[str] = mapped_column(Text, default="")
    examples: Mapped[list[Any]] = mapped_column(default=list)
    template: Mapped[str] = mapped_column(String(200))
    epsilon: Mapped[float] = mapped_column(Float)
    delta: Mapped[float] = mapped_column(Float)
    audit_share: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(20), default="single_label", server_default="single_label")
    review_budget: Mapped[int | None] = mapped_column(Integer, nullable=True)
    target_coverage: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Batch(Base):
    __tablename__ = "batches"
    __table_args__ = (UniqueConstraint("task_id", "idempotency_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_sha: Mapped[str] = mapped_column(String(64))
    item_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("batch_id", "external_id"),
        Index("ix_items_task_state", "task_id", "state"),
        Index("ix_items_batch_state", "batch_id", "state"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"))
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"))
    external_id: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    """float32 MiniLM embedding, written when the item is first scored (kNN few-shot, neighbour signals). Deferred:
    the review queue loads an item on every call and needs its text, not 1.5 KB of floats; readers select it."""
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(20), default="queued")
    """queued -> accepted | review -> resolved."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Prediction(Base):
    __tablename__ = "predictions"
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    source: Mapped[str] = mapped_column(String(20))
    model: Mapped[str] = mapped_column(String(300))
    template_sha: Mapped[str] = mapped_column(String(64), default="")
    prompt_sha: Mapped[str] = mapped_column(String(64), default="")
    raw_probs: Mapped[list[Any]] = mapped_column()
    probs: Mapped[list[Any]] = mapped_column()
    label: Mapped[str] = mapped_column(String(200))
    confidence: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DecisionRecord(Base):
    __tablename__ = "decisions"
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    prediction_id: Mapped[int] = mapped_column(ForeignKey("predictions.id"))
    accept: Mapped[bool] = mapped_column(Boolean)
    reasons: Mapped[list[Any]] = mapped_column()
    signals: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def reason_names(self) -> list[str]:
        """The reasons under their current names (see pipeline.route.RENAMED_REASONS)."""
        return stored_reasons(self.reasons)


class Label(Base):
    __tablename__ = "labels"
    __table_args__ = (
        Index("ix_labels_item", "item_id", "id"),
        Index("ix_labels_task_source", "task_id", "source", "item_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    label: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(20))
    """teacher | student | human | adjudicated (a lead's final label on a disputed item)."""
    confidence: Mapped[float | None] = mapped_column(Float)
    prediction_id: Mapped[int | None] = mapped_column(ForeignKey("predictions.id"))
    reviewer: Mapped[str | None] = mapped_column(String(200))
    """Who gave a human label: a reviewer key's name, or an annotator from an import (``labelstudio:<user>``)."""
    imported_by: Mapped[str | None] = mapped_column(String(200))
    """The key that imported it, for a label that came in a file."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReviewEntry(Base):
    """An item waiting for a human; deleted when resolved. leased_to/lease_expires give it to one reviewer at a time."""

    __tablename__ = "review_queue"
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    priority: Mapped[float] = mapped_column(Float)
    explanation: Mapped[str] = mapped_column(Text, default="")
    leased_to: Mapped[str | None] = mapped_column(String(200))
    lease_expires: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReviewSkip(Base):
    __tablename__ = "review_skips"
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), primary_key=True)
    reviewer: Mapped[str] = mapped_column(String(200), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state", "state", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(50))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id"))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(20), default="queued")
    """queued -> running -> done | failed; a running job whose lease expired is claimable again."""
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires: Mapped[datetime | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    progress_done: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime | None] = mapped_column()
    """A job waiting on something (seed reviews, a teacher that is down) is not claimed before this."""
    message: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class StudentVersion(Base):
    __tablename__ = "students"
    __table_args__ = (UniqueConstraint("task_id", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"))
    version: Mapped[str] = mapped_column(String(50))
    path: Mapped[str] = mapped_column(Text)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    promoted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LabelerVersion(Base):
    """A labeler candidate: the stack and probe fitted on every human label up to ``fitted_through``, then tested
    once, at its look, on the uniform reviews labeled after it (pipeline/certification.py). The look fills in
    ``looked_at``, the threshold it certified (None: nothing) and ``certified_on``; nothing else ever changes. The
    newest certified one accepts items."""

    __tablename__ = "labelers"
    __table_args__ = (UniqueConstraint("task_id", "look"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    look: Mapped[int] = mapped_column(Integer)
    stack: Mapped[dict[str, Any]] = mapped_column()
    probe: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    error_bound: Mapped[float | None] = mapped_column(Float, nullable=True)
    delta_spent: Mapped[float] = mapped_column(Float)
    """The level its look tests at, fixed when it was fitted (certification.plan_look)."""
    look_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """Fresh uniform reviews its look waits for, fixed when it was fitted; None while the review budget pays for
    no look (planned again if the budget is raised)."""
    floor: Mapped[float] = mapped_column(Float, default=0.0)
    """Its slice floor (pipeline/certification.slice_floor): only uniform reviews it is at least this sure of are
    in its slice, and its look tests no threshold below it."""
    floor_share: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Share of the labels it was fitted on at or above the floor (cross-fitted); None when nothing it could
    accept was worth a look."""
    sure_share: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Share down to which its cross-fitted error stays below most of epsilon (certification.SURE_MARGIN): a
    target beyond it is out of reach."""
    fitted_on: Mapped[int] = mapped_column(Integer)
    certified_on: Mapped[int] = mapped_column(Integer)
    fitted_through: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The newest human label (labels.id) it was fitted with; None for labelers from before fresh slices."""
    looked_at: Mapped[datetime | None] = mapped_column(nullable=True)
    expected_slice: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """Fresh reviews its look was expected to need to certify the task's target coverage, from its cross-fitted
    probabilities at fit time; None without a target, with too few labels to judge, or when out of reach."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelUsage(Base):
    """Seconds one model spent on one chunk of a task's work (append-only): what the cost report prices."""

    __tablename__ = "model_usage"
    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), index=True)
    stage: Mapped[str] = mapped_column(String(20))
    """teacher | student | embedder | training (see service.pipeline.cost.Stage)."""
    runs_on: Mapped[str] = mapped_column(String(10))
    """cpu | gpu | server: what its seconds are priced as."""
    items: Mapped[int] = mapped_column(Integer)
    answered: Mapped[int] = mapped_column(Integer)
    """Items whose label it gave (the student: those it kept rather than escalate to the teacher)."""
    wall_s: Mapped[float] = mapped_column(Float)
    cpu_s: Mapped[float] = mapped_column(Float)
    """CPU seconds of the worker's process (all its threads) during the call."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReviewAssignment(Base):
    """A reviewer (an API key's name) may review a task only when assigned to it; admins see every task."""

    __tablename__ = "review_assignments"
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), primary_key=True)
    reviewer: Mapped[str] = mapped_column(String(200), primary_key=True)
    assigned_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReviewSettings(Base):
    """How many distinct reviewers an audit sample and a gold item (meta "gold_label") need; others need one, or
    two when the first answer comes from a reviewer estimated less accurate than ``second_review_below``."""

    __tablename__ = "review_settings"
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), primary_key=True)
    audit_reviewers: Mapped[int] = mapped_column(Integer, default=1)
    gold_reviewers: Mapped[int] = mapped_column(Integer, default=1)
    second_review_below: Mapped[float | None] = mapped_column(Float, nullable=True)
    aggregate_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Stored rows start at DEFAULT_AGGREGATE_AT (store.review_team); null sends every disagreement to a lead."""
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReviewVote(Base):
    """One reviewer's answer on one item. Append-only except `undone_at`, set when the reviewer undoes it; the
    item's final label is still a Label row, written when the votes are complete and agree (or by adjudication)."""

    __tablename__ = "review_votes"
    __table_args__ = (
        Index("ix_review_votes_item", "item_id", "reviewer"),
        Index("ix_review_votes_task_reviewer", "task_id", "reviewer", "id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"))
    reviewer: Mapped[str] = mapped_column(String(200))
    label: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    """review | audit | gold: what the item was when voted on."""
    required: Mapped[int] = mapped_column(Integer)
    priority: Mapped[float] = mapped_column(Float)
    explanation: Mapped[str] = mapped_column(Text, default="")
    """The queue entry's priority and explanation, to put the item back in the queue on undo."""
    label_id: Mapped[int | None] = mapped_column(ForeignKey("labels.id"))
    """The final label this vote completed, if it did."""
    guideline_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The task's guidelines version when the answer was given (null for answers from before versions)."""
    undone_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Guideline(Base):
    """A version of a task's guidelines for reviewers (Markdown). Revising them adds a version; each review answer
    records the version it was given under. The teacher's prompt keeps the task's ``instructions``: guidelines
    written for people are not fed to a small model."""

    __tablename__ = "guidelines"
    __table_args__ = (UniqueConstraint("task_id", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class InconsistentPair(Base):
    """Two items of a task whose embeddings are near-identical but whose final labels differed when a consistency
    check found them; ``sent_at`` once a lead sent both to adjudication."""

    __tablename__ = "inconsistent_pairs"
    __table_args__ = (UniqueConstraint("task_id", "first_item_id", "second_item_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    first_item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    second_item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    cosine: Mapped[float] = mapped_column(Float)
    found_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(nullable=True)


class ConsistencyCheck(Base):
    """How far a task's consistency checks have read its labels: the next check compares only items labeled
    after ``checked_through`` (a label id) against every labeled item."""

    __tablename__ = "consistency_checks"
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), primary_key=True)
    checked_through: Mapped[int] = mapped_column(Integer, default=0)
    min_cosine: Mapped[float] = mapped_column(Float)
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)


class AdjudicationEntry(Base):
    """An item whose reviewers disagreed, waiting for a lead's final label; deleted when adjudicated."""

    __tablename__ = "adjudication_queue"
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    priority: Mapped[float] = mapped_column(Float)
    explanation: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# Indexes on the review queue for next_item: the reviewer's own lease, then the most urgent free item.
Index("ix_review_queue_order", ReviewEntry.task_id, ReviewEntry.priority.desc(), ReviewEntry.item_id)
Index("ix_review_queue_leased", ReviewEntry.task_id, ReviewEntry.leased_to)
