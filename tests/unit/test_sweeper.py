"""The sweeper against a real Redis and a real Celery producer (no worker needed to see a send)."""

from __future__ import annotations

import json

import pytest
import redis

from tasks.celery_app import create_celery
from tasks.clock import utcnow_iso
from tasks.events import EventLog
from tasks.records import ScanRecord
from tasks.settings import Settings
from tasks.store import FAILED, QUEUED, RUNNING, ScanStore
from workers.lease import lease_key
from workers.sweeper import LOCK_KEY, Sweeper

OLD = "2020-01-01T00:00:00.000Z"


@pytest.fixture()
def sweeper(redis_url):
    url = redis_url.rsplit("/", 1)[0] + "/8"
    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushdb()
    settings = Settings(redis_url=url, lease_seconds=5, max_attempts=2, sweep_interval=2)
    celery = create_celery(settings)
    yield Sweeper(settings, client, client, celery), client
    celery.close()
    client.flushdb()


def add(store: ScanStore, test_id: str, status: str, **fields):
    store.create(ScanRecord(test_id=test_id, workspace_id="ws", component_id="c", assessment_id="a",
                            profile="smoke", source_type="git", git_url="https://example.com/r",
                            manifest_digest=None, created_at=OLD, **fields))
    if status != QUEUED:
        store.transition(test_id, status, heartbeat_at=OLD)


def queued(client) -> list[str]:
    return [json.loads(m)["headers"]["id"] for m in client.lrange("scans", 0, -1)]


def test_stale_running_scan_is_requeued_then_failed(sweeper):
    sw, client = sweeper
    store = sw.store
    add(store, "test_00000000000a", RUNNING)
    add(store, "test_00000000000b", RUNNING)
    client.set(lease_key("test_00000000000b"), "x", ex=60)  # alive: untouched
    assert sw.sweep_once()["requeued"] == ["test_00000000000a"]
    assert queued(client) == ["test_00000000000a"]
    events = EventLog(client).all("test_00000000000a")
    assert events[-1]["phase"] == "requeued"
    # while the message waits, or within the grace after a requeue, nothing more happens
    client.delete(LOCK_KEY)
    assert sw.sweep_once() == {"requeued": [], "failed": []}
    client.delete("scans")
    client.delete(LOCK_KEY)
    store.update("test_00000000000a", requeued_at=OLD)
    assert sw.sweep_once()["requeued"] == ["test_00000000000a"]  # second hand-out (max_attempts=2)
    client.delete("scans")
    client.delete(LOCK_KEY)
    store.update("test_00000000000a", requeued_at=OLD)
    assert sw.sweep_once()["failed"] == ["test_00000000000a"]
    record = store.get("test_00000000000a")
    assert record.status == FAILED and record.errors[0]["code"] == "worker_lost"
    last = EventLog(client).all("test_00000000000a")[-1]
    assert last["type"] == "scan_complete" and last["status"] == FAILED
    assert store.get("test_00000000000b").status == RUNNING
    assert client.ttl(store.key("test_00000000000a")) > 0  # retention applies


def test_queued_scan_whose_message_was_lost_is_sent_again(sweeper):
    sw, client = sweeper
    add(sw.store, "test_00000000000c", QUEUED)
    add(sw.store, "test_00000000000d", QUEUED)
    sw.celery.send_task("scans.run", args=["test_00000000000d"], task_id="test_00000000000d", queue="scans")
    fresh = "test_00000000000e"
    sw.store.create(ScanRecord(test_id=fresh, workspace_id="ws", component_id="c", assessment_id="a",
                               profile="smoke", source_type="git", created_at=utcnow_iso()))
    assert sw.sweep_once()["requeued"] == ["test_00000000000c"]
    assert sorted(queued(client)) == ["test_00000000000c", "test_00000000000d"]


def test_one_sweep_at_a_time(sweeper):
    sw, client = sweeper
    add(sw.store, "test_00000000000f", RUNNING)
    client.set(LOCK_KEY, "other", ex=30)
    assert sw.sweep_once() == {"requeued": [], "failed": []}
    assert queued(client) == []
