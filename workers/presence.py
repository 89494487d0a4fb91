"""Publishes a worker as online in Redis (``ca:workers``), for /stats."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from typing import Any

from celery.signals import worker_ready, worker_shutdown

from tasks import keyspace

log = logging.getLogger(__name__)
WORKERS_KEY = keyspace.WORKERS


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


def _on_ready(sender: Any = None, **_: Any) -> None:
    engine = sender.app.certus_engine
    threading.Thread(target=_presence.run, args=(sender.hostname, engine.redis), daemon=True).start()


def _on_shutdown(**_: Any) -> None:
    _presence.stop.set()


def install() -> None:
    worker_ready.connect(_on_ready, weak=False)
    worker_shutdown.connect(_on_shutdown, weak=False)
