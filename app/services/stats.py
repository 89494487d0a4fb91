"""Counts for /stats, computed from Redis so every API replica answers the same."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from tasks import keyspace, metrics, names
from tasks.states import UploadStatus
from tasks.store import ScanStore

ACTIVE_STREAMS_KEY = keyspace.ACTIVE_STREAMS
WORKERS_KEY = keyspace.WORKERS
FRESH_SECONDS = 60


class Presence:
    """This process's count of open streams, published to one Redis hash field per process."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self.proc_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._count = 0
        self._lock = threading.Lock()

    def _publish(self) -> None:
        try:
            self.redis.hset(ACTIVE_STREAMS_KEY, self.proc_id, f"{self._count}:{time.time():.0f}")
        except redis.RedisError:
            pass  # a count is not worth failing a stream for

    @contextmanager
    def watching(self) -> Iterator[None]:
        with self._lock:
            self._count += 1
        self._publish()
        metrics.WS_STREAMS_OPENED.inc()
        metrics.WS_STREAMS_ACTIVE.inc()
        try:
            yield
        finally:
            metrics.WS_STREAMS_ACTIVE.dec()
            with self._lock:
                self._count -= 1
            self._publish()


class Stats:
    def __init__(self, client: redis.Redis, store: ScanStore, broker: redis.Redis,
                 queues: list[str] | None = None) -> None:
        self.redis = client
        self.store = store
        self.broker = broker
        self.queues = queues or [names.SCANS_QUEUE, names.UPLOADS_QUEUE]

    def queue_depth(self) -> dict[str, int]:
        pipe = self.broker.pipeline(transaction=False)
        for queue in self.queues:
            pipe.llen(queue)
        return {q: int(n) for q, n in zip(self.queues, pipe.execute(), strict=True)}

    def _fresh_sum(self, key: str) -> tuple[int, int]:
        now = time.time()
        total = entries = 0
        entries_raw: Any = self.redis.hgetall(key)
        for value in entries_raw.values():
            count, _, stamp = value.partition(":")
            if stamp and now - float(stamp) < FRESH_SECONDS * 60:
                total += int(count)
                entries += 1
        return total, entries

    def collect(self) -> dict[str, Any]:
        uploads = {str(s): 0 for s in UploadStatus}
        for status, count in self.redis.hgetall(keyspace.UPLOAD_COUNTS).items():
            if status in uploads:
                uploads[status] = int(count)
        active, _ = self._fresh_sum(ACTIVE_STREAMS_KEY)
        now = time.time()
        workers = [json.loads(v) for v in self.redis.hgetall(WORKERS_KEY).values()]
        online = [w for w in workers if now - w.get("seen", 0) < FRESH_SECONDS]
        return {
            "scans": self.store.counts_by_status(),
            "uploads": uploads,
            "active_streams": active,
            "queue_depth": self.queue_depth(),
            "workers_online": len(online),
        }
