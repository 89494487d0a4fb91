"""The worker's composition root: ``celery -A workers.bootstrap worker``.

Reads settings once, builds the Celery app, registers the thin tasks and attaches the engine.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery
from celery.signals import worker_process_shutdown, worker_ready, worker_shutdown

from tasks import broker_recovery, db, metrics, plugins, scan_tasks, threadlogs, upload_tasks
from tasks.celery_app import create_celery, quiet_known_warnings
from tasks.logconfig import bind_celery_task_context, configure_logging
from tasks.redis_client import connect
from tasks.settings import Settings
from workers import presence
from workers.engine import ScanEngine
from workers.findings import UPGRADE_ERRORS
from workers.sources.git import install_spares
from workers.sweeper import Sweeper
from workers.uploads.engine import UploadEngine

log = logging.getLogger(__name__)


def create_worker_app(settings: Settings | None = None) -> Celery:
    settings = settings or Settings.from_env()
    configure_logging(settings)
    plugins.load(settings.plugins + settings.worker_plugins)  # source kinds and publish destinations
    _upgrade_database(settings)
    bind_celery_task_context()
    app = create_celery(settings)
    threadlogs.install_in_worker(app, after_setup=quiet_known_warnings)
    broker_recovery.install()
    broker_recovery.install_connect_probe()
    app.steps["consumer"].add(broker_recovery.RestoreStranded)
    scan_tasks.register(app)
    upload_tasks.register(app)
    # A Redis restart shorter than a lease goes unnoticed by running scans: their writes wait for it.
    client = connect(settings.redis_url, settings=settings, outage_seconds=settings.lease_seconds)
    app.certus_engine = ScanEngine(settings, client)  # type: ignore[attr-defined,unused-ignore]
    app.certus_uploads = UploadEngine(settings, client)  # type: ignore[attr-defined,unused-ignore]
    presence.install()
    worker_ready.connect(_serve_metrics, weak=False)
    install_spares(app)
    worker_ready.connect(_start_sweeper, weak=False)
    worker_shutdown.connect(_stop_sweepers, weak=False)
    return app


def _upgrade_database(settings: Settings) -> None:
    """The findings store's schema at the newest migration (several processes may do this at once:
    the upgrade takes a lock). A database out of reach does not stop the worker: its scans finish
    without a comparison, and each pool process tries again when it records one."""
    try:
        db.upgrade(settings)
    except UPGRADE_ERRORS as exc:
        log.error("the findings database %s cannot be upgraded now: %s", db.display_url(settings.database_url),
                  exc.__class__.__name__)


def _serve_metrics(sender: Any = None, **_: Any) -> None:
    """``/metrics`` of this worker and its pool processes, served by the main process."""
    settings = sender.app.certus_engine.settings
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


_sweepers: list[Sweeper] = []


def _start_sweeper(sender: Any = None, **_: Any) -> None:
    """Each worker's main process sweeps for scans whose worker vanished (one sweep at a time)."""
    engine = sender.app.certus_engine
    settings = engine.settings
    broker = engine.redis if settings.broker_is_store else connect(settings.broker, settings=settings)
    sweeper = Sweeper(settings, engine.redis, broker, sender.app)
    sweeper.start()
    _sweepers.append(sweeper)


def _stop_sweepers(**_: Any) -> None:
    for sweeper in _sweepers:
        sweeper.stop.set()


celery_app = create_worker_app()
app = celery_app
