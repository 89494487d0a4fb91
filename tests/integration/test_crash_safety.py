"""Workers killed mid-scan, warm shutdown, and Redis restarted mid-scan: no accepted scan is lost
and none completes twice. Each scan's clone goes through a gated proxy, so "mid-scan" is a known
point rather than a race."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest
import redis

from stack.redis_server import RedisServer
from tests.support.gate import GateProxy
from tests.support.service import Service, base_env
from tests.support.ws import read_stream

CRASH_ENV = {"CERTUS_ASSURANCE_LEASE_SECONDS": "4", "CERTUS_ASSURANCE_SWEEP_INTERVAL": "2",
             "CERTUS_ASSURANCE_MAX_ATTEMPTS": "10", "CERTUS_ASSURANCE_RATE_LIMIT_BURST": "5000",
             "CERTUS_ASSURANCE_RATE_LIMIT_PER_MINUTE": "60000"}


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def wait_for(predicate, timeout: float = 180, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise TimeoutError(what)


def internal(svc: Service, test_id: str) -> dict:
    """The full record, internal fields (attempt, worker, worker_pid) included."""
    client = redis.Redis.from_url(svc.env["CERTUS_ASSURANCE_REDIS_URL"], decode_responses=True)
    try:
        return {k: json.loads(v) for k, v in client.hgetall(f"ca:scan:{test_id}").items()}
    finally:
        client.close()


def wait_running(svc: Service, test_id: str) -> dict:
    def running():
        record = internal(svc, test_id)
        return record if record.get("status") == "RUNNING" and record.get("worker_pid") else None
    return wait_for(running, what=f"{test_id} running")


def assert_completed_once(svc: Service, test_id: str) -> tuple[dict, list[dict]]:
    svc.wait_done(test_id, timeout=300)
    record = internal(svc, test_id)
    stream = read_stream(svc.ws_url(f"/v1/security-scans/{test_id}/stream"), headers=svc.ws_headers,
                         timeout=120)
    assert stream.close_code == 1000
    assert stream.types.count("scan_complete") == 1 and stream.types[-1] == "scan_complete"
    assert stream.events[-1]["status"] == record["status"]
    bundle = svc.artifact_root / test_id
    history = [json.loads(line) for line in (bundle / "logs/stream.jsonl").read_text().splitlines()]
    assert [e["type"] for e in history].count("scan_complete") == 1
    assert json.loads((bundle / "scan.json").read_text())["status"] == record["status"]
    assert not list((svc.artifact_root / ".staging").glob(f"{test_id}.*")) or record["attempt"] > 1
    return record, stream.events


@pytest.fixture(scope="module")
def crashy(tmp_path_factory, redis_url, vulnerable_repo, git_server):
    tmp = tmp_path_factory.mktemp("crash")
    db_url = redis_url.rsplit("/", 1)[0] + "/9"
    client = redis.Redis.from_url(db_url, decode_responses=True)
    client.flushdb()
    svc = Service(env=base_env(tmp, db_url, **CRASH_ENV), workdir=tmp)
    gate = GateProxy(git_server.port)
    named: dict[str, object] = {}
    try:
        for name in ("c1", "c2"):
            named[name] = svc.start_worker(name, concurrency=1)
        svc.start_api()
        svc.wait_workers(2)
        svc.named = named  # type: ignore[attr-defined]
        yield svc, gate, client
    finally:
        gate.shutdown()
        svc.stop()
        client.flushdb()


def worker_of(svc: Service, record: dict):
    name = record["worker"].split("@", 1)[0]
    return name, svc.named[name]  # type: ignore[attr-defined]


def restart(svc: Service, name: str) -> None:
    svc.named[name] = svc.start_worker(name, concurrency=1)  # type: ignore[attr-defined]


def test_sigkill_of_the_process_running_a_scan(crashy):
    svc, gate, _ = crashy
    gate.close()
    test_id = svc.submit(git_url=gate.url("vulnerable"), profile="smoke").json()["test_id"]
    record = wait_running(svc, test_id)
    os.kill(record["worker_pid"], signal.SIGKILL)  # the pool process executing the scan
    time.sleep(1)
    gate.open()
    record, events = assert_completed_once(svc, test_id)
    assert record["status"] == "SUCCEEDED", record["errors"]
    assert record["attempt"] == 2
    restarted = [e for e in events if e["type"] == "phase" and e["phase"] == "restarted"]
    assert len(restarted) == 1 and restarted[0]["attempt"] == 2


def test_sigkill_of_a_whole_worker_is_recovered_by_the_sweeper(crashy):
    svc, gate, _ = crashy
    gate.close()
    test_id = svc.submit(git_url=gate.url("vulnerable"), profile="smoke").json()["test_id"]
    record = wait_running(svc, test_id)
    name, proc = worker_of(svc, record)
    for pid in [*children(proc.pid), proc.pid]:  # type: ignore[attr-defined]
        os.kill(pid, signal.SIGKILL)
    proc.wait(30)  # type: ignore[attr-defined]
    gate.open()
    try:
        record, events = assert_completed_once(svc, test_id)
    finally:
        restart(svc, name)
    assert record["status"] == "SUCCEEDED", record["errors"]
    assert any(e["type"] == "phase" and e["phase"] == "requeued" for e in events)
    assert any(e["type"] == "phase" and e["phase"] == "restarted" for e in events)
    svc.wait_workers(2)


def test_warm_shutdown_lets_the_running_scan_finish(crashy):
    svc, gate, _ = crashy
    gate.close()
    test_id = svc.submit(git_url=gate.url("vulnerable"), profile="smoke").json()["test_id"]
    record = wait_running(svc, test_id)
    name, proc = worker_of(svc, record)
    proc.send_signal(signal.SIGTERM)  # type: ignore[attr-defined]
    try:
        time.sleep(1)
        gate.open()
        record, events = assert_completed_once(svc, test_id)
        assert record["status"] == "SUCCEEDED", (record["errors"], [e for e in events if e["type"] != "log"])
        assert record["attempt"] == 1
        assert proc.wait(120) == 0  # type: ignore[attr-defined]
    finally:
        restart(svc, name)
    svc.wait_workers(2)


def test_random_kills_lose_nothing_and_complete_nothing_twice(crashy):
    svc, gate, _ = crashy
    gate.open()
    rng = random.Random(5)  # noqa: S311
    ids = [svc.submit(git_url=gate.url("vulnerable"), profile="smoke").json()["test_id"] for _ in range(6)]
    kills = 0
    deadline = time.monotonic() + 240
    while kills < 4 and time.monotonic() < deadline:
        time.sleep(rng.uniform(1, 4))
        running = [internal(svc, t) for t in ids]
        running = [r for r in running if r["status"] == "RUNNING" and r.get("worker_pid")]
        if not running:
            if all(svc.status(t)["status"] in ("SUCCEEDED", "FAILED", "CANCELLED") for t in ids):
                break
            continue
        victim = rng.choice(running)
        name, proc = worker_of(svc, victim)
        if rng.random() < 0.5:
            try:
                os.kill(victim["worker_pid"], signal.SIGKILL)
            except ProcessLookupError:
                continue
        else:
            for pid in [*children(proc.pid), proc.pid]:  # type: ignore[attr-defined]
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.wait(30)  # type: ignore[attr-defined]
            restart(svc, name)
        kills += 1
    for test_id in ids:
        record, _ = assert_completed_once(svc, test_id)
        assert record["status"] == "SUCCEEDED", (test_id, record["errors"])
    svc.wait_workers(2)


def test_redis_restart_mid_scan_loses_no_scan(tmp_path, git_server, vulnerable_repo):
    server = RedisServer(tmp_path / "redis").start()
    svc = Service(env=base_env(tmp_path, server.url, **CRASH_ENV), workdir=tmp_path)
    gate = GateProxy(git_server.port)
    try:
        svc.start_worker("r1", concurrency=1)
        svc.start_worker("r2", concurrency=1)
        svc.start_api()
        svc.wait_workers(2)
        gate.close()
        ids = [svc.submit(git_url=gate.url("vulnerable"), profile="smoke").json()["test_id"] for _ in range(3)]
        wait_running(svc, ids[0])
        server.stop()  # SIGTERM: Redis writes its AOF and exits
        down = svc.http.get(svc.url(f"/v1/security-scans/{ids[0]}"), timeout=60)
        assert down.status_code == 503 and down.json()["error"]["code"] == "redis_unavailable"
        assert down.headers["Retry-After"]
        ready = svc.http.get(svc.url("/ready"), timeout=60)
        assert ready.status_code == 503 and ready.json()["error"]["code"] == "redis_unavailable"
        time.sleep(2)
        server = RedisServer(server.data_dir, port=server.port).start()
        wait_for(lambda: svc.http.get(svc.url("/ready"), timeout=30).status_code == 200, what="ready")
        gate.open()
        for test_id in ids:
            record, _ = assert_completed_once(svc, test_id)
            assert record["status"] == "SUCCEEDED", (test_id, record["errors"])
    finally:
        gate.shutdown()
        svc.stop()
        server.stop()
