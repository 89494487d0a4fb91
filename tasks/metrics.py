"""Prometheus metrics shared by the API and the workers: definitions, small hooks and exposition.

Both sides run several processes (gunicorn workers, Celery's prefork children). With
``PROMETHEUS_MULTIPROC_DIR`` set, every process writes its samples to files in that folder and
``render()`` adds them up (prometheus_client's multiprocess mode). Give each service its own folder
and empty it before the service starts; without the variable each process counts alone, which is
only right for a single process.

Gauges of the whole system (queue depth, scans per status, workers online) are read from Redis at
scrape time by ``RedisCollector``, so every API replica reports the same values.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

SCAN_BUCKETS = (1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600)
TOOL_BUCKETS = (0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)

SCANS_SUBMITTED = Counter("certus_scans_submitted_total", "Scans accepted by the API.", ["profile"])
SCANS_STARTED = Counter("certus_scans_started_total", "Scan attempts a worker started (restarts included).",
                        ["profile"])
SCANS_FINISHED = Counter("certus_scans_finished_total", "Scans a worker finished, by final status.",
                         ["status", "profile"])
SCAN_DURATION = Histogram("certus_scan_duration_seconds", "Wall time of one scan attempt, start to finish.",
                          ["status", "profile"], buckets=SCAN_BUCKETS)
PHASE_DURATION = Histogram("certus_phase_duration_seconds", "Wall time of one pipeline phase.",
                           ["phase", "status"], buckets=SCAN_BUCKETS)
TOOL_DURATION = Histogram("certus_tool_duration_seconds", "Wall time of one scanner run.", ["tool"],
                          buckets=TOOL_BUCKETS)
TOOL_FAILURES = Counter("certus_tool_failures_total", "Scanner runs that did not complete.",
                        ["tool", "reason"])
EVENTS_APPENDED = Counter("certus_events_appended_total", "Events appended to scan streams.", ["type"])
WS_STREAMS_ACTIVE = Gauge("certus_ws_streams_active", "WebSocket streams open now.",
                          multiprocess_mode="livesum")
WS_STREAMS_OPENED = Counter("certus_ws_streams_opened_total", "WebSocket streams accepted for a known scan.")
UPLOADS = Counter("certus_uploads_total", "Upload requests by outcome (permitted, uploaded, denied, "
                  "upload_failed).", ["outcome"])


def profile_label(profile: str) -> str:
    """A built-in profile's name, or ``custom``: manifests may name any profile, and every distinct
    label value is a new time series."""
    from tasks.profiles import BUILTIN_PROFILES

    name = (profile or "").lower()
    return name if name in BUILTIN_PROFILES else "custom"


def upload_outcome(outcome: str) -> None:
    """Hook for the upload path: call once per upload request when its status settles."""
    UPLOADS.labels(outcome=outcome).inc()


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir") or None


def mark_process_dead(pid: int) -> None:
    """Drop a dead process's live gauges (call from gunicorn's child_exit and Celery's child shutdown)."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


class RedisCollector(Collector):
    """Gauges read from Redis when scraped: queue depth, scans by status, workers online."""

    def __init__(self, read: Callable[[], dict[str, Any]]) -> None:
        self.read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self.read()
        depth = GaugeMetricFamily("certus_queue_depth", "Tasks waiting in each broker queue.", labels=["queue"])
        for queue, n in stats.get("queue_depth", {}).items():
            depth.add_metric([queue], n)
        yield depth
        scans = GaugeMetricFamily("certus_scans", "Scans known to the state store, by status.", labels=["status"])
        for status, n in stats.get("scans", {}).items():
            scans.add_metric([status], n)
        yield scans
        yield GaugeMetricFamily("certus_workers_online", "Workers that reported in the last minute.",
                                value=stats.get("workers_online", 0))
        yield GaugeMetricFamily("certus_streams_active_cluster", "WebSocket streams open on every replica.",
                                value=stats.get("active_streams", 0))


def registry(extra: Collector | None = None) -> CollectorRegistry:
    """The registry to expose: every process's samples (multiprocess) or this one's, plus ``extra``."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        reg = CollectorRegistry()
        multiprocess.MultiProcessCollector(reg)
    else:
        reg = CollectorRegistry()
        reg.register(_Forward(REGISTRY))
    if extra is not None:
        reg.register(extra)
    return reg


class _Forward(Collector):
    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterator[Any]:
        yield from self.source.collect()


def render(extra: Collector | None = None) -> tuple[bytes, str]:
    return generate_latest(registry(extra)), CONTENT_TYPE_LATEST
