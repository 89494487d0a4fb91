"""Worker pools: workers join and leave while scans run and no scan is lost; SIGTERM is a warm
shutdown (the running scan finishes); per-profile queues route scans to dedicated pools."""

from __future__ import annotations

import json
import signal
import time

import pytest
import redis

from stack.redis_server import RedisServer
from tests.support.service import Service, base_env
from tests.support.ws import read_stream

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


@pytest.fixture()
def own_redis(tmp_path):
    # Its own Redis: the session's shared workers must not take these scans.
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server.url
    finally:
        server.stop()


def _worker(svc: Service, test_id: str) -> str:
    """Which worker ran a scan: kept in the record, not shown in the public status."""
    client = redis.Redis.from_url(svc.env["CERTUS_ASSURANCE_REDIS_URL"], decode_responses=True)
    return str(json.loads(client.hget(f"ca:scan:{test_id}", "worker") or "null"))


def _running(svc: Service, ids: list[str]) -> list[dict]:
    return [r for r in (svc.status(i) for i in ids) if r["status"] == "RUNNING"]


def test_workers_join_and_leave_while_scans_run(tmp_path, own_redis, vulnerable_repo):
    svc = Service(env=base_env(tmp_path, own_redis), workdir=tmp_path)
    try:
        first = svc.start_worker("first", queues="scans", concurrency=1)
        svc.start_api()
        svc.wait_workers(1, timeout=120)
        ids = [svc.submit(git_url=vulnerable_repo["url"], profile="smoke").json()["test_id"] for _ in range(6)]
        # Wait until the first worker runs one of them.
        deadline = time.monotonic() + 180
        while not (running := _running(svc, ids)):
            assert time.monotonic() < deadline, "no scan started"
            time.sleep(0.1)
        # A second worker joins while scans run and are queued.
        svc.start_worker("second", queues="scans", concurrency=1)
        svc.wait_workers(2, timeout=120)
        # The first one leaves: SIGTERM is a warm shutdown, so the scan it runs finishes.
        in_flight = _running(svc, ids) or running
        ran_by = {scan["test_id"]: _worker(svc, scan["test_id"]) for scan in in_flight}
        first.send_signal(signal.SIGTERM)
        assert first.wait(300) == 0
        records = [svc.wait_done(i, timeout=400) for i in ids]
        assert [r["status"] for r in records] == ["SUCCEEDED"] * len(ids), [r.get("errors") for r in records]
        by_id = {r["test_id"]: r for r in records}
        for test_id, worker in ran_by.items():
            if worker.startswith("first@"):  # the leaving worker finished what it ran
                assert _worker(svc, test_id).startswith("first@")
                assert by_id[test_id]["status"] == "SUCCEEDED"
        assert any(_worker(svc, r["test_id"]).startswith("second@") for r in records)
        for test_id in ids:
            stream = read_stream(svc.ws_url(f"/v1/security-scans/{test_id}/stream"), headers=svc.ws_headers)
            phases = [e.get("phase") for e in stream.events if e["type"] == "phase"]
            assert "restarted" not in phases  # nothing was interrupted and run again
            assert stream.types[-1] == "scan_complete" and stream.types.count("scan_complete") == 1
        # Another worker joins the pool and takes new work.
        svc.start_worker("third", queues="scans", concurrency=1)
        svc.wait_workers(2, timeout=120)
        more = [svc.submit(git_url=vulnerable_repo["url"], profile="smoke").json()["test_id"] for _ in range(2)]
        assert all(svc.wait_done(i, timeout=400)["status"] == "SUCCEEDED" for i in more)
        stats = svc.http.get(svc.url("/stats"), timeout=10).json()
        assert stats["queue_depth"]["scans"] == 0
    finally:
        svc.stop()


def test_per_profile_queues_route_scans_to_their_pool(tmp_path, own_redis, vulnerable_repo):
    env = base_env(tmp_path, own_redis, CERTUS_ASSURANCE_SCAN_QUEUE_PER_PROFILE="true")
    svc = Service(env=env, workdir=tmp_path)
    try:
        svc.start_worker("smoke-pool", queues="scans.smoke", concurrency=1)
        svc.start_api()
        svc.wait_workers(1, timeout=120)
        smoke = svc.submit(git_url=vulnerable_repo["url"], profile="smoke").json()["test_id"]
        light = svc.submit(git_url=vulnerable_repo["url"], profile="light").json()["test_id"]
        assert svc.wait_done(smoke, timeout=300)["status"] == "SUCCEEDED"
        # No worker listens on scans.light: the light scan waits there, visible in /stats.
        stats = svc.http.get(svc.url("/stats"), timeout=10).json()
        assert stats["queue_depth"]["scans.light"] == 1 and stats["queue_depth"]["scans.smoke"] == 0
        assert svc.status(light)["status"] == "QUEUED"
        svc.start_worker("light-pool", queues="scans.light", concurrency=1)
        assert svc.wait_done(light, timeout=400)["status"] in ("SUCCEEDED", "FAILED")
        assert _worker(svc, light).startswith("light-pool@")
    finally:
        svc.stop()
