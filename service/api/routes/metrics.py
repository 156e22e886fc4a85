"""Prometheus metrics, beside the API: this process's own (request latency, and the worker's counters when the
worker runs in it, plus the process collector) and the service's state read from the database at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session

from service.api.deps import SessionDep
from service.store import monitoring
from service.tables import utcnow

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def metrics(session: SessionDep) -> Response:
    """Prometheus text format; scrape it without a key, like /health."""
    state = CollectorRegistry(auto_describe=False)
    state.register(DatabaseCollector(session))
    return Response(generate_latest(REGISTRY) + generate_latest(state), media_type=CONTENT_TYPE_LATEST)


class DatabaseCollector(Collector):
    def __init__(self, session: Session) -> None:
        self.session = session

    def describe(self) -> list[Metric]:
        return []  # described by collecting, at scrape time only

    def collect(self) -> Iterator[Metric]:
        tasks = monitoring.task_figures(self.session)
        items = GaugeMetricFamily("understudy_items", "Items by task and state.", labels=["task", "state"])
        labels = GaugeMetricFamily(
            "understudy_labels",
            "Label rows written, by task and source (teacher, student, human).",
            labels=["task", "source"],
        )
        backlog = GaugeMetricFamily("understudy_review_backlog", "Items waiting for a reviewer.", labels=["task"])
        bound = GaugeMetricFamily(
            "understudy_certified_error_bound", "Certified bound on the error of accepted labels.", labels=["task"]
        )
        coverage = GaugeMetricFamily(
            "understudy_coverage", "Share of routed items the machine accepted.", labels=["task"]
        )
        for name, figures in sorted(tasks.items()):
            for state, count in sorted(figures.items_by_state.items()):
                items.add_metric([name, state], count)
            for source, count in sorted(figures.labels_by_source.items()):
                labels.add_metric([name, source], count)
            backlog.add_metric([name], figures.review_backlog)
            if figures.error_bound is not None:
                bound.add_metric([name], figures.error_bound)
            if figures.coverage is not None:
                coverage.add_metric([name], figures.coverage)
        jobs = GaugeMetricFamily("understudy_jobs", "Jobs by kind and state.", labels=["kind", "state"])
        age = GaugeMetricFamily(
            "understudy_job_oldest_age_seconds",
            "Age of the oldest job by kind and state (queued: how long the queue has made it wait).",
            labels=["kind", "state"],
        )
        for job in monitoring.job_figures(self.session, now=utcnow()):
            jobs.add_metric([job.kind, job.state], job.count)
            if job.state in ("queued", "running"):
                age.add_metric([job.kind, job.state], job.oldest_age_s)
        yield from (items, labels, backlog, bound, coverage, jobs, age)
