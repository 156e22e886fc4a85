"""The worker's own Prometheus counters, in the process that runs it: `understudy serve` shows them at /metrics
beside the API's; a separate `understudy worker --metrics-port N` serves them on its own port."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, start_http_server

from service.jobs.context import WorkerContext
from service.pipeline.cost import StageUsage
from service.store.items import ItemOutcome

ITEMS_LABELED = Counter(
    "understudy_items_labeled",
    "Items this worker scored and routed, by task, the model that scored them and where they went.",
    ["task", "source", "route"],
)
MODEL_ITEMS_PER_SECOND = Gauge(
    "understudy_model_items_per_second", "Items per second of each model in this worker since it started.", ["model"]
)
MODEL_SECONDS = Counter("understudy_model_seconds", "Seconds each model spent scoring in this worker.", ["model"])
JOBS_ENDED = Counter(
    "understudy_jobs_ended",
    "Job runs this worker ended, by kind and how: done, postponed (waiting), retried (an error), failed.",
    ["kind", "outcome"],
)


def record_chunk(task: str, outcomes: list[ItemOutcome]) -> None:
    for outcome in outcomes:
        route = "accepted" if outcome.decision.accept else "review"
        ITEMS_LABELED.labels(task=task, source=outcome.score.source, route=route).inc()


def record_usage(ctx: WorkerContext, spent: list[StageUsage]) -> None:
    """Count the seconds the models spent, and bring their speeds up to date."""
    for row in spent:
        MODEL_SECONDS.labels(model=row.stage).inc(row.wall_s)
    for stage, speed in ctx.speeds.items():
        if speed.per_second is not None:
            MODEL_ITEMS_PER_SECOND.labels(model=stage).set(speed.per_second)


def serve(port: int) -> None:
    """This process's counters at http://0.0.0.0:<port>/metrics, from a background thread."""
    start_http_server(port)
