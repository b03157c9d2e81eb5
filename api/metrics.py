"""GET /metrics: geoship's series in Prometheus's text format, for Prometheus to scrape beside Ray's own.

Two kinds of series:
- what the API answered: requests by method, route (the template, so that tokens and ids never become labels)
  and status, and their latency. `geoship serve --workers N` shares them between its workers through
  prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR), so a scrape answered by any worker counts all.
- what the database says, read at each scrape: exports by status, the queue (pending exports), the bytes
  download links have served, and webhook attempts and failures. Every worker reports the same values, whichever
  process did the work.
"""

from __future__ import annotations

import logging
import os
import time

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, func, select

from models.db import get_engine
from models.status import ExportStatus
from models.tables import Download, Export, WebhookAttempt

logger = logging.getLogger(__name__)

# Seconds: from a cached status read to a large estimate or an upload of a credential check.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class DatabaseCollector:
    """The series the database holds, read when Prometheus scrapes."""

    def collect(self):
        up = GaugeMetricFamily("geoship_database_up", "Whether the last scrape could read geoship's database")
        try:
            with Session(get_engine()) as session:
                by_status = dict(session.exec(select(Export.status, func.count()).group_by(Export.status)).all())
                served, downloads = session.exec(
                    select(func.coalesce(func.sum(Download.bytes_sent), 0), func.count(Download.id))).one()
                webhook_attempts = dict(session.exec(select(WebhookAttempt.ok, func.count())
                                                     .group_by(WebhookAttempt.ok)).all())
                webhooks_given_up = session.exec(select(func.count()).where(
                    WebhookAttempt.final.is_(True), WebhookAttempt.ok.is_(False))).one()
        except SQLAlchemyError as exc:  # a restart or failover: say so rather than fail the scrape
            logger.warning("metrics: the database is unavailable (%s)", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        exports = GaugeMetricFamily("geoship_exports", "Exports by status", labels=["status"])
        for status in ExportStatus:
            exports.add_metric([status.value], by_status.get(status, 0))
        yield exports
        yield GaugeMetricFamily("geoship_queue_depth", "Exports waiting to start (pending)",
                                value=by_status.get(ExportStatus.pending, 0))
        yield CounterMetricFamily("geoship_download_bytes", "Bytes served by download links", value=served)
        yield CounterMetricFamily("geoship_downloads", "Requests served by download links (whole or ranged)",
                                  value=downloads)
        attempts = CounterMetricFamily("geoship_webhook_attempts", "Webhook POSTs by outcome", labels=["outcome"])
        attempts.add_metric(["delivered"], webhook_attempts.get(True, 0))
        attempts.add_metric(["failed"], webhook_attempts.get(False, 0))
        yield attempts
        yield CounterMetricFamily("geoship_webhook_failures", "Status changes whose webhook was given up (every "
                                  "attempt failed, or the address was refused)", value=webhooks_given_up)


def route_template(request: Request) -> str:
    """The request's path with each path parameter put back as `{name}` (`/downloads/{token}/{filename}`), or
    "unmatched": never the raw path, which holds tokens and ids. (A route included through prefixed routers
    knows only its own part of the path, so the template is rebuilt from the full one.)"""
    if request.scope.get("route") is None:
        return "unmatched"
    names = {str(value): name for name, value in request.path_params.items()}
    return "/".join(f"{{{names[part]}}}" if part in names else part for part in request.url.path.split("/"))


def install_metrics(app: FastAPI) -> None:
    """Count and time every request, and serve /metrics from a registry of this app's own."""
    registry = CollectorRegistry()
    shared = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))  # several workers: values live in files they share
    own = None if shared else registry
    requests = Counter("geoship_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=own)
    latency = Histogram("geoship_http_request_seconds", "Time to the start of an HTTP response (a download streams "
                        "on after it)", ["method", "route"], buckets=LATENCY_BUCKETS, registry=own)
    if shared:
        MultiProcessCollector(registry)
    registry.register(DatabaseCollector())

    @app.middleware("http")
    async def _count(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        template = route_template(request)
        requests.labels(request.method, template, str(response.status_code)).inc()
        latency.labels(request.method, template).observe(time.perf_counter() - started)
        return response

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
