"""Finds scans whose worker vanished and hands them out again, a bounded number of times.

Celery's late acknowledgement redelivers a scan whose pool process died, but not one whose whole
worker died (the message waits for the broker's visibility timeout) nor one whose message was
lost. The sweeper covers both from the state store: a RUNNING scan whose lease lapsed, or a
QUEUED scan with no message in the queue, is sent again; after ``MAX_ATTEMPTS`` hand-outs it is
failed with ``worker_lost``. Every worker runs one sweeper thread; a Redis lock lets one sweep
at a time. ``python -m workers.sweeper --once`` runs one sweep by hand.
"""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import sys
import threading
from datetime import UTC, datetime
from typing import Any

import redis
from celery import Celery

from tasks import keyspace, names
from tasks.clock import utcnow_iso
from tasks.events import EventLog, encode_event, stream_key
from tasks.settings import Settings
from tasks.states import ScanStatus
from tasks.store import FAILED, QUEUED, RUNNING, ScanStore, StreamAppend
from workers.lease import lease_key

log = logging.getLogger(__name__)
LOCK_KEY = keyspace.SWEEPER_LOCK
PRIORITY_SEP = "\x06\x16"


def _age(stamp: str | None) -> float:
    if not stamp:
        return float("inf")
    try:
        then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return float("inf")
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return (datetime.now(UTC) - then).total_seconds()


class Sweeper:
    def __init__(self, settings: Settings, client: redis.Redis, broker: redis.Redis, celery: Celery) -> None:
        self.settings = settings
        self.redis = client
        self.broker = broker
        self.celery = celery
        self.store = ScanStore(client, retention_seconds=settings.retention_seconds)
        self.events = EventLog(client, maxlen=settings.stream_maxlen, retention_seconds=settings.retention_seconds)
        self.stop = threading.Event()
        # A scan is stale once its lease has lapsed and its heartbeat is older than the lease.
        self.grace = settings.lease_seconds * 2

    def queued_ids(self) -> set[str]:
        """Ids of scan messages waiting in the broker's queue (every priority list)."""
        ids: set[str] = set()
        for queue in [names.SCANS_QUEUE] + [f"{names.SCANS_QUEUE}{PRIORITY_SEP}{p}" for p in range(1, 10)]:
            raw: Any = self.broker.lrange(queue, 0, -1)
            for item in raw:
                try:
                    ids.add(json.loads(item)["headers"]["id"])
                except (ValueError, KeyError, TypeError):
                    continue
        return ids

    def sweep_once(self) -> dict[str, list[str]]:
        done: dict[str, list[str]] = {"requeued": [], "failed": []}
        token = secrets.token_hex(6)
        if not self.redis.set(LOCK_KEY, token, nx=True, ex=max(self.settings.sweep_interval - 1, 1)):
            return done  # another worker is sweeping
        waiting: set[str] | None = None
        for status in (RUNNING, QUEUED):
            for test_id in sorted(self.store.ids_with_status(status)):
                record = self.store.get_fields(test_id, "status", "heartbeat_at", "created_at", "requeued_at",
                                               "requeues", "manifest_digest")
                if record["status"] != status:
                    continue
                if status == RUNNING and (self.redis.exists(lease_key(test_id))
                                          or _age(record["heartbeat_at"]) < self.grace):
                    continue
                if status == QUEUED and _age(record["created_at"]) < self.grace:
                    continue
                if _age(record["requeued_at"]) < self.grace:
                    continue
                if waiting is None:
                    waiting = self.queued_ids()
                if test_id in waiting:
                    continue  # a delivery is already on its way
                if int(record["requeues"] or 0) >= self.settings.max_attempts:
                    if self._fail(test_id, status, record):
                        done["failed"].append(test_id)
                else:
                    self._requeue(test_id, status, int(record["requeues"] or 0) + 1)
                    done["requeued"].append(test_id)
        return done

    def _requeue(self, test_id: str, status: str, requeues: int) -> None:
        log.warning("scan %s is %s with no live worker; handing it out again (%d)", test_id, status, requeues)
        self.store.update(test_id, requeues=requeues, requeued_at=utcnow_iso())
        self.events.append(test_id, "phase", phase="requeued",
                           message=f"the worker running the scan vanished; queued again ({requeues})",
                           attempt=requeues)
        self.celery.send_task(names.SCAN_RUN, args=[test_id], task_id=test_id, queue=names.SCANS_QUEUE)

    def _fail(self, test_id: str, status: ScanStatus, record: dict[str, Any]) -> bool:
        message = (f"the scan was handed out {record['requeues']} times after losing its worker and never "
                   "finished; giving up")
        error = {"code": "worker_lost", "message": message}
        self.events.append(test_id, "error", **error)
        payload = encode_event("scan_complete", {"status": FAILED, "manifest_digest": record["manifest_digest"],
                                                 "bundle": None, "summary": None})
        result = self.store.transition(
            test_id, FAILED, allowed_from=[status],
            event=StreamAppend(stream_key(test_id), self.events.next_id(test_id), payload,
                               self.settings.stream_maxlen),
            completed_at=utcnow_iso(), errors=[error])
        if result.ok:
            self.events.expire(test_id)
            log.error("scan %s failed: worker_lost", test_id)
        return result.ok

    def run_forever(self) -> None:
        while not self.stop.wait(self.settings.sweep_interval):
            try:
                self.sweep_once()
            except Exception as exc:  # noqa: BLE001 - Redis may be restarting; sweep again next time
                log.warning("sweep failed: %s", exc.__class__.__name__)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run_forever, name="sweeper", daemon=True)
        thread.start()
        return thread


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.sweeper")
    parser.add_argument("--once", action="store_true", help="one sweep, then exit")
    args = parser.parse_args(argv)
    from tasks.celery_app import create_celery
    from tasks.redis_client import connect

    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level)
    client = connect(settings.redis_url)
    sweeper = Sweeper(settings, client, connect(settings.broker), create_celery(settings))
    if args.once:
        print(json.dumps(sweeper.sweep_once()))
        return 0
    sweeper.run_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
