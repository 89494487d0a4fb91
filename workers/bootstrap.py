"""The worker's composition root: ``celery -A workers.bootstrap worker``.

Reads settings once, builds the Celery app, registers the thin tasks and attaches the engine.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import Any

from celery import Celery
from celery.signals import worker_process_shutdown, worker_ready, worker_shutdown

from tasks import metrics, scan_tasks
from tasks.celery_app import create_celery
from tasks.logconfig import bind_celery_task_context, configure_logging
from tasks.redis_client import connect
from tasks.settings import Settings
from workers.engine import ScanEngine

log = logging.getLogger(__name__)
WORKERS_KEY = "ca:workers"


def create_worker_app(settings: Settings | None = None) -> Celery:
    settings = settings or Settings.from_env()
    configure_logging(settings)
    bind_celery_task_context()
    app = create_celery(settings)
    scan_tasks.register(app)
    app.certus_engine = ScanEngine(settings, connect(settings.redis_url, settings=settings))  # type: ignore[attr-defined,unused-ignore]
    return app


class _Presence:
    """Publishes this worker as online in Redis, for /stats."""

    def __init__(self) -> None:
        self.stop = threading.Event()

    def run(self, hostname: str, client: Any) -> None:
        while True:
            try:
                client.hset(WORKERS_KEY, hostname, json.dumps({"seen": time.time(), "host": socket.gethostname()}))
            except Exception as exc:  # noqa: BLE001 - Redis may be restarting; try again next beat
                log.debug("presence beat failed: %s", exc.__class__.__name__)
            if self.stop.wait(15):
                break
        try:
            client.hdel(WORKERS_KEY, hostname)
        except Exception:  # noqa: BLE001, S110 - best effort on the way out
            pass


_presence = _Presence()


@worker_ready.connect
def _on_ready(sender: Any = None, **_: Any) -> None:
    engine = sender.app.certus_engine
    threading.Thread(target=_presence.run, args=(sender.hostname, engine.redis), daemon=True).start()
    _serve_metrics(engine.settings)


def _serve_metrics(settings: Settings) -> None:
    """``/metrics`` of this worker and its pool processes, served by the main process."""
    if not settings.worker_metrics_port:
        return
    if not metrics.multiprocess_dir():
        log.warning("WORKER_METRICS_PORT is set but PROMETHEUS_MULTIPROC_DIR is not: "
                    "the pool processes' metrics will be missing")
    from prometheus_client import start_http_server

    start_http_server(settings.worker_metrics_port, settings.worker_metrics_bind, registry=metrics.registry())
    log.info("worker metrics on http://%s:%d/metrics", settings.worker_metrics_bind, settings.worker_metrics_port)


@worker_process_shutdown.connect
def _on_child_exit(**_: Any) -> None:
    metrics.mark_process_dead(os.getpid())


@worker_shutdown.connect
def _on_shutdown(**_: Any) -> None:
    _presence.stop.set()


celery_app = create_worker_app()
app = celery_app
