"""The cost report: what each model and the reviewers spent on a task, priced per hour, and the student's saving."""

from __future__ import annotations

from pydantic import BaseModel, Field


class PricesPublic(BaseModel):
    cpu_hour_usd: float = Field(description="Per vCPU-hour (student, embedder, training, a teacher on the CPU).")
    gpu_hour_usd: float = Field(description="Per hour of a GPU running the teacher in the worker.")
    server_hour_usd: float = Field(description="Per hour of the teacher server's machine.")
    reviewer_hour_usd: float


class SourceCostPublic(BaseModel):
    source: str = Field(description="teacher, student, embedder, training, or human (the reviewers).")
    runs_on: str = Field(description="cpu, gpu or server for a model; people for the reviewers.")
    items: int = Field(
        description="Items the model scored; for training, examples trained on; for human, answers given."
    )
    seconds: float = Field(description="Wall seconds of the model; the reviewers' estimated working time.")
    cpu_seconds: float | None = Field(description="CPU seconds of the worker process during the model's calls.")
    gpu_seconds: float | None = Field(description="Wall seconds on a GPU or a teacher server; null on the CPU.")
    usd: float
    usd_per_1000: float | None = Field(description="USD per 1,000 of its items.")


class StudentSavingPublic(BaseModel):
    items: int = Field(description="Items the student labeled without asking the teacher.")
    teacher_usd_per_1000: float = Field(description="What the teacher cost per 1,000 items it scored on this task.")
    student_usd: float = Field(description="The student's cost: scoring every item it saw, and its training.")
    saved_usd: float = Field(
        description="The teacher's cost on the student's items less the student's cost (negative: a loss)."
    )


class CostPublic(BaseModel):
    prices: PricesPublic
    sources: list[SourceCostPublic]
    labeled: int = Field(description="Items with a final label, and rows labeled from files by `understudy label`.")
    file_rows: int = Field(description="Of those, rows labeled from files (not stored as items).")
    imported: int = Field(description="Human labels that came with an import (no review time is known for them).")
    machine_usd: float = Field(description="What the models cost.")
    human_usd: float = Field(description="What the reviewers' time cost.")
    total_usd: float
    usd_per_1000_labeled: float | None = Field(description="Total cost per 1,000 labeled items.")
    student_saving: StudentSavingPublic | None
    saving_note: str = Field(description="Why there is no saving figure, when there is none.")
    assumptions: str
