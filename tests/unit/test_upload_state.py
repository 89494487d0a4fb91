"""Upload state in Redis (real Redis): one request in flight, counters, stale tasks, and the stream
follower that carries a late watcher through the upload."""

from __future__ import annotations

import threading

import pytest

from tasks import keyspace
from tasks.events import EventLog
from tasks.ids import new_test_id
from tasks.records import ScanRecord
from tasks.store import ScanStore
from tasks.uploads import DENIED, PENDING, PERMITTED, UPLOADED, UploadStore


@pytest.fixture()
def parts(redis_client):
    store = ScanStore(redis_client)
    events = EventLog(redis_client, block_ms=100)
    return store, events, UploadStore(store, events)


def _scan(store: ScanStore, status: str = "SUCCEEDED") -> str:
    test_id = new_test_id()
    store.create(ScanRecord(test_id=test_id, workspace_id="ws", component_id="c", assessment_id="a",
                            profile="smoke", status=status))
    return test_id


def _counts(redis_client) -> dict[str, int]:
    return {k: int(v) for k, v in redis_client.hgetall(keyspace.UPLOAD_COUNTS).items()}


def test_one_request_in_flight_and_counters_follow(parts, redis_client):
    store, _, uploads = parts
    test_id = _scan(store)
    before = _counts(redis_client)
    created, _, rid = uploads.open_request(test_id, "verified", None)
    assert created
    again, move, _ = uploads.open_request(test_id, "basic", "x")
    assert not again and move.previous == PENDING
    assert uploads.state(test_id).upload_request_id == rid
    # a task of another request cannot move this one
    assert not uploads.move(test_id, PERMITTED, allowed_from=[PENDING], request_id="upr_other").ok
    assert uploads.move(test_id, PERMITTED, allowed_from=[PENDING], request_id=rid).ok
    assert not uploads.open_request(test_id, "verified", None)[0]
    assert uploads.move(test_id, UPLOADED, allowed_from=[PERMITTED], request_id=rid, remote_artifacts={"s3": {}}).ok
    after = _counts(redis_client)
    assert after.get(UPLOADED, 0) == before.get(UPLOADED, 0) + 1
    assert after.get(PENDING, 0) == before.get(PENDING, 0)
    assert after.get(PERMITTED, 0) == before.get(PERMITTED, 0)
    # finished: a new request is a new upload
    created, _, rid2 = uploads.open_request(test_id, "verified", None)
    assert created and rid2 != rid
    assert store.get(test_id).remote_artifacts is None


def test_only_succeeded_scans(parts):
    store, _, uploads = parts
    test_id = _scan(store, "FAILED")
    created, move, _ = uploads.open_request(test_id, "verified", None)
    assert not created and move.previous == "scan:FAILED"
    created, move, _ = uploads.open_request("test_000000000000", "verified", None)
    assert not created and move.previous == "missing"


def test_concurrent_requests_open_exactly_one(parts):
    store, _, uploads = parts
    test_id = _scan(store)
    results: list[bool] = []
    threads = [threading.Thread(target=lambda: results.append(uploads.open_request(test_id, "verified", None)[0]))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1


def test_late_watcher_follows_the_upload_to_its_end(parts):
    store, events, uploads = parts
    test_id = _scan(store)
    events.append(test_id, "phase", phase="started", message="x")
    complete = events.append(test_id, "scan_complete", status="SUCCEEDED")
    # no upload in flight: a watcher after scan_complete ends at once (as before)
    assert list(events.follow(test_id, complete, is_finished=lambda: True,
                              upload_active=lambda: uploads.in_flight(test_id))) == []
    _, _, rid = uploads.open_request(test_id, "verified", None)
    uploads.emit(test_id, PENDING, "requested")
    seen: list[dict] = []

    def watch() -> None:
        seen.extend(events.follow(test_id, complete, is_finished=lambda: True,
                                  upload_active=lambda: uploads.in_flight(test_id)))

    watcher = threading.Thread(target=watch)
    watcher.start()
    uploads.move(test_id, DENIED, allowed_from=[PENDING], request_id=rid, upload_reason="no")
    uploads.emit(test_id, DENIED, "no")
    watcher.join(30)
    assert not watcher.is_alive()
    assert [e["upload_status"] for e in seen] == [PENDING, DENIED]
    # a watcher from the start still ends at scan_complete
    from_start = list(events.follow(test_id, is_finished=lambda: True, upload_active=lambda: True))
    assert from_start[-1]["type"] == "scan_complete"
