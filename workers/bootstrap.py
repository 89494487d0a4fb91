"""The worker's composition root: ``celery -A workers.bootstrap worker``.

Reads settings once, builds the Celery app, registers the thin tasks and attaches the engine.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from typing import Any

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

from tasks import scan_tasks
from tasks.celery_app import create_celery
from tasks.logconfig import configure_logging
from tasks.redis_client import connect
from tasks.settings import Settings
from workers.engine import ScanEngine
from workers.sweeper import Sweeper

log = logging.getLogger(__name__)
WORKERS_KEY = "ca:workers"


def create_worker_app(settings: Settings | None = None) -> Celery:
    settings = settings or Settings.from_env()
    configure_logging(settings)
    app = create_celery(settings)
    scan_tasks.register(app)
    app.certus_engine = ScanEngine(settings, connect(settings.redis_url))  # type: ignore[attr-defined,unused-ignore]
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


_sweepers: list[Sweeper] = []


@worker_ready.connect
def _on_ready(sender: Any = None, **_: Any) -> None:
    engine = sender.app.certus_engine
    threading.Thread(target=_presence.run, args=(sender.hostname, engine.redis), daemon=True).start()
    settings = engine.settings
    broker = engine.redis if settings.broker == settings.redis_url else connect(settings.broker)
    sweeper = Sweeper(settings, engine.redis, broker, sender.app)
    sweeper.start()
    _sweepers.append(sweeper)


@worker_shutdown.connect
def _on_shutdown(**_: Any) -> None:
    _presence.stop.set()
    for sweeper in _sweepers:
        sweeper.stop.set()


celery_app = create_worker_app()
app = celery_app
