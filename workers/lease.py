"""A per-scan lease with heartbeats: one worker runs a scan at a time, and a scan whose worker
vanished is found by its expired lease."""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable

import redis

from tasks import keyspace

log = logging.getLogger(__name__)

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def lease_key(test_id: str) -> str:
    return keyspace.lease(test_id)


class Lease:
    def __init__(self, client: redis.Redis, test_id: str, seconds: int,
                 on_beat: Callable[[], None] | None = None) -> None:
        self.redis = client
        self.key = lease_key(test_id)
        self.ms = seconds * 1000
        self.token = secrets.token_hex(8)
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._on_beat = on_beat
        self._thread: threading.Thread | None = None
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def acquire(self) -> bool:
        if not self.redis.set(self.key, self.token, nx=True, px=self.ms):
            return False
        self._thread = threading.Thread(target=self._beat, name=f"lease-{self.key}", daemon=True)
        self._thread.start()
        return True

    def _beat(self) -> None:
        interval = max(self.ms / 3000, 0.5)
        failures = 0
        while not self._stop.wait(interval):
            try:
                if not self._renew(keys=[self.key], args=[self.token, self.ms]):
                    log.error("lease %s lost", self.key)
                    self.lost.set()
                    return
                failures = 0
                if self._on_beat is not None:
                    self._on_beat()
            except redis.RedisError as exc:
                # Redis may be restarting; keep trying until the lease would have expired.
                failures += 1
                log.warning("lease renewal failed (%s), attempt %d", exc.__class__.__name__, failures)
                if failures * interval * 1000 > self.ms:
                    self.lost.set()
                    return

    def held(self) -> bool:
        """Whether this lease is still ours (a Redis error counts as yes: the caller's final
        write fails on its own if Redis is really gone)."""
        if self.lost.is_set():
            return False
        try:
            return bool(self.redis.get(self.key) == self.token)
        except redis.RedisError:
            return True

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self._release(keys=[self.key], args=[self.token])
        except redis.RedisError:
            pass  # it expires on its own
