"""The worker's composition root: ``celery -A workers.bootstrap worker``.

Reads settings once, builds the Celery app, registers the thin tasks and attaches the engine.
"""

from __future__ import annotations

import logging

from celery import Celery

from tasks import scan_tasks
from tasks.celery_app import create_celery
from tasks.logconfig import configure_logging
from tasks.redis_client import connect
from tasks.settings import Settings
from workers import presence
from workers.engine import ScanEngine

log = logging.getLogger(__name__)


def create_worker_app(settings: Settings | None = None) -> Celery:
    settings = settings or Settings.from_env()
    configure_logging(settings)
    app = create_celery(settings)
    scan_tasks.register(app)
    app.certus_engine = ScanEngine(settings, connect(settings.redis_url))  # type: ignore[attr-defined,unused-ignore]
    presence.install()
    return app


celery_app = create_worker_app()
app = celery_app
