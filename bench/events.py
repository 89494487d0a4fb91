"""Live events: a worker-side append to the frame at a WebSocket client, at a fixed rate, against a
bare XADD -> XREAD BLOCK pair on the same Redis. Also the replay of a long history to one client
against a bare XRANGE of the same stream."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import websocket
from websockets.exceptions import ConnectionClosedOK
from websockets.sync.client import connect as ws_connect

from bench.harness import Stack
from bench.stats import percentile
from tasks.events import EventLog, encode_event, stream_key
from tasks.ids import new_test_id
from tasks.records import ScanRecord
from tasks.states import ScanStatus
from tasks.store import ScanStore, StreamAppend


def _paced(count: int, rate: float, send: Any) -> None:
    start = time.perf_counter()
    for i in range(count):
        target = start + i / rate
        delay = target - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        send(i)


def _new_scan(stack: Stack) -> tuple[str, ScanStore, EventLog]:
    client = stack.client
    store = ScanStore(client)
    events = EventLog(client, maxlen=100000)
    test_id = new_test_id()
    store.create(ScanRecord(test_id=test_id, workspace_id="bench", component_id="c", assessment_id="a",
                            source_type="git", profile="smoke"))
    store.transition(test_id, ScanStatus.RUNNING)
    return test_id, store, events


def _complete(store: ScanStore, events: EventLog, test_id: str) -> None:
    payload = encode_event("scan_complete", {"status": "SUCCEEDED", "summary": None, "bundle": None,
                                             "manifest_digest": None})
    store.transition(test_id, ScanStatus.SUCCEEDED, event=StreamAppend(stream_key(test_id), events.next_id(test_id),
                                                               payload, 100000))


def live_latency(stack: Stack, base: str, count: int, rate: float) -> dict[str, float]:
    test_id, store, events = _new_scan(stack)
    ws = websocket.create_connection(f"ws://{base}/v1/security-scans/{test_id}/stream",
                                     timeout=60, header=stack.ws_header)
    lat: list[float] = []
    done = threading.Event()

    def reader() -> None:
        while True:
            frame = ws.recv()
            now = time.time()
            if not frame:
                break
            event = json.loads(frame)
            if event["type"] == "scan_complete":
                break
            if event["type"] == "log":
                lat.append((now - event["timestamp"]) * 1000)
        done.set()

    events.append(test_id, "phase", phase="bench", message="start")
    t = threading.Thread(target=reader)
    t.start()
    t0 = time.perf_counter()
    _paced(count, rate, lambda i: events.append(test_id, "log", tool="bench", stream="stdout", line=f"l{i}"))
    elapsed = time.perf_counter() - t0
    _complete(store, events, test_id)
    done.wait(60)
    ws.close()
    return {"p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99), "received": len(lat),
            "rate_per_s": count / elapsed}


def bare_latency(stack: Stack, count: int, rate: float) -> dict[str, float]:
    client = stack.client
    reader_client = stack.client
    key = f"bench:bare:{new_test_id()}"
    lat: list[float] = []

    def reader() -> None:
        last = "0-0"
        while len(lat) < count:
            reply: Any = reader_client.xread({key: last}, count=500, block=1000)
            now = time.time()
            for entry_id, data in reply[0][1] if reply else []:
                last = entry_id
                lat.append((now - float(data["t"])) * 1000)

    t = threading.Thread(target=reader)
    t.start()
    t0 = time.perf_counter()
    _paced(count, rate, lambda i: client.xadd(key, {"t": repr(time.time()), "line": f"l{i}"}))
    elapsed = time.perf_counter() - t0
    t.join(60)
    client.delete(key)
    return {"p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99), "received": len(lat),
            "rate_per_s": count / elapsed}


def max_rate(stack: Stack, base: str, count: int) -> dict[str, float]:
    """Sustained throughput: append as fast as possible, time until the client has everything."""
    test_id, store, events = _new_scan(stack)
    got = 0
    batch = [("log", {"tool": "bench", "stream": "stdout", "line": f"l{i}"}) for i in range(count)]
    events.append(test_id, "phase", phase="bench", message="start")
    # Both sides parse every event; the WebSocket side reads with the `websockets` client (see replay).
    with ws_connect(f"ws://{base}/v1/security-scans/{test_id}/stream", additional_headers=stack.headers,
                    max_size=None) as conn:
        json.loads(conn.recv())  # the stream is open and tailing before the clock starts
        t0 = time.perf_counter()
        writer = threading.Thread(target=lambda: [events.append_many(test_id, batch[i:i + 100])
                                                  for i in range(0, count, 100)])
        writer.start()
        while got < count:
            if json.loads(conn.recv())["type"] == "log":
                got += 1
        ws_rate = count / (time.perf_counter() - t0)
        writer.join()
    _complete(store, events, test_id)
    key = f"bench:bare:{new_test_id()}"
    client = stack.client
    got = 0
    t0 = time.perf_counter()

    def bare_writer() -> None:
        for i in range(0, count, 100):
            pipe = client.pipeline(transaction=False)
            for j in range(i, min(i + 100, count)):
                pipe.xadd(key, {"e": json.dumps(batch[j][1])})
            pipe.execute()

    w = threading.Thread(target=bare_writer)
    w.start()
    last = "0-0"
    reader = stack.client
    while got < count:
        reply: Any = reader.xread({key: last}, count=500, block=1000)
        for entry_id, data in reply[0][1] if reply else []:
            last = entry_id
            json.loads(data["e"])
            got += 1
    bare_rate = count / (time.perf_counter() - t0)
    w.join()
    client.delete(key)
    return {"ws_rate_per_s": ws_rate, "bare_rate_per_s": bare_rate}


def replay(stack: Stack, base: str, count: int) -> dict[str, float]:
    test_id, store, events = _new_scan(stack)
    for i in range(0, count, 500):
        events.append_many(test_id, [("log", {"tool": "bench", "stream": "stdout", "line": f"line {j}"})
                                     for j in range(i, min(i + 500, count))])
    _complete(store, events, test_id)
    # The client matters at this rate: the `websockets` library parses frames several times faster
    # than websocket-client, so the figure shows the service rather than the client.
    t0 = time.perf_counter()
    frames = 0
    with ws_connect(f"ws://{base}/v1/security-scans/{test_id}/stream", additional_headers=stack.headers,
                    max_size=None) as conn:
        try:
            for frame in conn:
                json.loads(frame)
                frames += 1
        except ConnectionClosedOK:
            pass
    ws_s = time.perf_counter() - t0
    client = stack.client
    t0 = time.perf_counter()
    got = 0
    last = "-"
    while True:
        entries: Any = client.xrange(stream_key(test_id), min=last, count=1000)
        if last != "-":
            entries = entries[1:]
        if not entries:
            break
        for entry_id, data in entries:
            json.loads(data["e"])
            got += 1
            last = entry_id
    bare_s = time.perf_counter() - t0
    return {"ws_seconds": ws_s, "bare_seconds": bare_s, "frames": frames, "bare_entries": got}


def run(quick: bool) -> dict[str, Any]:
    count = 1000 if quick else 5000
    history = 2000 if quick else 10000
    with Stack() as stack:
        base = stack.api()
        live = live_latency(stack, base, count, 1000.0)
        bare = bare_latency(stack, count, 1000.0)
        rates = max_rate(stack, base, count * 2)
        rep = replay(stack, base, history)
    return {
        "live_p50_ms": live["p50_ms"], "live_p99_ms": live["p99_ms"],
        "bare_p50_ms": bare["p50_ms"], "bare_p99_ms": bare["p99_ms"],
        "p99_ratio": live["p99_ms"] / bare["p99_ms"],
        "ws_rate_per_s": rates["ws_rate_per_s"], "bare_rate_per_s": rates["bare_rate_per_s"],
        "rate_ratio": rates["ws_rate_per_s"] / rates["bare_rate_per_s"],
        "replay_events": history, "replay_ws_s": rep["ws_seconds"], "replay_bare_s": rep["bare_seconds"],
        "replay_ratio": rep["bare_seconds"] / rep["ws_seconds"],
    }


TARGETS = {"p99_ratio": ("<=", 3.0), "rate_ratio": (">=", 0.5), "replay_ratio": (">=", 0.5)}
