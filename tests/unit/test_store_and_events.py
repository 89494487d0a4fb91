import threading
import time

import pytest

from tasks.events import EventLog, InvalidEventId, check_event_id, decode_entry, encode_event, stream_key
from tasks.ids import new_test_id
from tasks.records import ScanRecord
from tasks.store import QueueFull, ScanStore, StreamAppend


@pytest.fixture()
def store(redis_client):
    return ScanStore(redis_client, retention_seconds=100)


@pytest.fixture()
def events(redis_client):
    return EventLog(redis_client, maxlen=1000, block_ms=200)


def make(store, **fields):
    test_id = new_test_id()
    store.create(ScanRecord(test_id=test_id, workspace_id=fields.pop("workspace_id", "ws-u"),
                            component_id=fields.pop("component_id", "c"), assessment_id="a",
                            profile=fields.pop("profile", "light"), **fields))
    return test_id


def test_transitions_follow_the_lifecycle(store):
    test_id = make(store)
    assert store.transition(test_id, "RUNNING").ok
    assert store.transition(test_id, "RUNNING").ok  # a restart after a lost worker
    done = store.transition(test_id, "SUCCEEDED", summary={"total": 1})
    assert done.ok and done.previous == "RUNNING"
    refused = store.transition(test_id, "RUNNING")
    assert not refused.ok and refused.previous == "SUCCEEDED"
    record = store.get(test_id)
    assert record.status == "SUCCEEDED" and record.summary == {"total": 1}
    assert test_id in store.ids_with_status("SUCCEEDED")
    assert test_id not in store.ids_with_status("RUNNING")
    assert store.redis.ttl(store.key(test_id)) > 0
    assert not store.transition("test_000000000000", "RUNNING").ok


def test_terminal_status_and_final_event_are_atomic(store, events, redis_client):
    test_id = make(store)
    store.transition(test_id, "RUNNING")
    events.append(test_id, "phase", phase="x", message="y")
    event_id = events.next_id(test_id)
    payload = encode_event("scan_complete", {"status": "FAILED"})
    ok = store.transition(test_id, "FAILED", event=StreamAppend(stream_key(test_id), event_id, payload, 100))
    assert ok.ok
    assert events.range(test_id)[-1]["id"] == event_id
    # a refused transition appends nothing
    again = store.transition(test_id, "SUCCEEDED",
                             event=StreamAppend(stream_key(test_id), events.next_id(test_id), payload, 100))
    assert not again.ok and len(events.range(test_id)) == 2
    # an id that is too small is refused before anything is written
    other = make(store)
    store.transition(other, "RUNNING")
    events.append(other, "phase", phase="x", message="y")
    with pytest.raises(Exception):
        store.transition(other, "SUCCEEDED", event=StreamAppend(stream_key(other), "1-0", payload, 100))
    assert store.get(other).status == "RUNNING"


def test_event_encoding_round_trip():
    raw = encode_event("log", {"tool": "bandit", "stream": "stdout", "line": "x"}, timestamp=1.5)
    event = decode_entry("5-1", {"e": raw})
    assert event == {"id": "5-1", "type": "log", "timestamp": 1.5, "tool": "bandit", "stream": "stdout",
                     "line": "x"}
    with pytest.raises(ValueError):
        encode_event("nonsense", {})
    assert check_event_id("0") == "0-0"
    for bad in ("abc", "1-2-3", "-1", "1" * 30 + "-0"):
        with pytest.raises(InvalidEventId):
            check_event_id(bad)


def test_follow_replays_then_tails_until_scan_complete(events, store):
    test_id = make(store)
    first = events.append(test_id, "phase", phase="a", message="1")
    got = []

    def consume():
        got.extend(events.follow(test_id))

    t = threading.Thread(target=consume)
    t.start()
    time.sleep(0.3)
    events.append(test_id, "log", tool="t", stream="stdout", line="x")
    events.append(test_id, "scan_complete", status="SUCCEEDED")
    events.append(test_id, "upload", upload_status="pending")  # after the end: not part of this follow
    t.join(5)
    assert not t.is_alive()
    assert [e["type"] for e in got] == ["phase", "log", "scan_complete"]
    assert got[0]["id"] == first
    resumed = list(events.follow(test_id, after=first))
    assert [e["type"] for e in resumed] == ["log", "scan_complete"]


def test_follow_of_a_finished_scan_without_stream_returns(events, store):
    test_id = make(store)
    assert list(events.follow(test_id, is_finished=lambda: True)) == []
    stopped = list(events.follow(test_id, stop=lambda: True))
    assert stopped == []


def test_list_is_newest_first_with_cursor(store):
    ids = [make(store, workspace_id="ws-page", component_id=f"c{i % 2}") for i in range(7)]
    seen, cursor = [], None
    while True:
        page, cursor = store.list(workspace_id="ws-page", limit=3, cursor=cursor)
        seen += [r.test_id for r in page]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    filtered, _ = store.list(workspace_id="ws-page", component_id="c0", limit=10)
    assert [r.test_id for r in filtered] == [ids[6], ids[4], ids[2], ids[0]]


def test_queued_count_per_workspace_follows_the_lifecycle(store):
    ws = "ws-queued-" + new_test_id()[5:]
    first, second = make(store, workspace_id=ws), make(store, workspace_id=ws)
    make(store, workspace_id=ws + "-other")
    assert store.queued_in_workspace(ws) == 2
    assert store.transition(first, "RUNNING").ok
    assert store.queued_in_workspace(ws) == 1
    assert store.transition(second, "CANCELLED").ok
    assert store.queued_in_workspace(ws) == 0
    assert not store.transition(second, "RUNNING").ok  # a refused move changes nothing
    assert store.queued_in_workspace(ws) == 0
    third = make(store, workspace_id=ws)
    store.delete(third, ws)
    assert store.queued_in_workspace(ws) == 0


def test_queue_cap_is_checked_and_written_in_one_step(store, events):
    ws = "ws-cap-" + new_test_id()[5:]
    written, refused = [], []

    def submit() -> None:
        test_id = new_test_id()
        record = ScanRecord(test_id=test_id, workspace_id=ws, component_id="c", assessment_id="a",
                            source_type="git", profile="light")
        event = StreamAppend(stream_key(test_id), "*", encode_event("phase", {"phase": "queued"}), 100)
        try:
            store.create(record, event=event, queue_cap=3)
            written.append(test_id)
        except QueueFull as exc:
            refused.append((test_id, exc.queued))

    threads = [threading.Thread(target=submit) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # twelve racing submitters, a cap of three: exactly three get in
    assert len(written) == 3 and store.queued_in_workspace(ws) == 3
    assert all(queued == 3 for _, queued in refused) and len(refused) == 9
    for test_id, _ in refused:  # a refused submission leaves no record, index entry or stream
        assert store.get(test_id) is None and not events.exists(test_id)
        assert store.redis.zscore(f"ca:idx:ws:{ws}", test_id) is None
    assert store.get(written[0]).status == "QUEUED" and len(events.all(written[0])) == 1
    # a started scan frees its place
    assert store.transition(written[0], "RUNNING").ok
    store.create(ScanRecord(test_id=new_test_id(), workspace_id=ws, component_id="c", assessment_id="a",
                            source_type="git", profile="light"), queue_cap=3)
    assert store.queued_in_workspace(ws) == 3
