"""`make cluster` end to end: HAProxy in front of two API replicas, two scan workers and an upload
worker on one embedded Redis. 20 concurrent scans go in through the load balancer; each is streamed
through the replica that did NOT accept it; every scan completes and every stream is complete and
ordered. Then /metrics and Flower show them, and Ctrl-C stops everything."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
import requests

from stack.ports import free_port, wait_port
from tests.support.cluster import running_cluster
from tests.support.ws import read_stream

ROOT = Path(__file__).resolve().parents[2]
SCANS = 20
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]


def _ids_key(event_id: str) -> tuple[int, int]:
    ms, seq = event_id.split("-")
    return int(ms), int(seq)


def _samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
            out.append((labels, float(m.group(2))))
    return out


def _total(text: str, name: str, **labels: str) -> float:
    return sum(v for ls, v in _samples(text, name) if all(ls.get(k) == want for k, want in labels.items()))


def cluster_redis(cluster) -> redis.Redis:
    """The cluster's embedded Redis, with the password `make cluster` generated for it."""
    state = cluster["state"]
    password = Path(state["redis_password_file"]).read_text().strip()
    return redis.Redis.from_url(state["redis_url"], password=password, decode_responses=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with running_cluster(tmp_path_factory.mktemp("cluster"), {"CERTUS_ASSURANCE_LEASE_SECONDS": "30"}) as info:
        info["flower"] = None
        try:
            yield info
        finally:
            if info["flower"] is not None and info["flower"].poll() is None:
                info["flower"].terminate()
                try:
                    info["flower"].wait(30)
                except subprocess.TimeoutExpired:  # Flower may hang retrying a broker that is gone
                    info["flower"].kill()
                    info["flower"].wait(10)


@pytest.fixture(scope="module")
def flower(cluster):
    """Flower on the cluster's broker, started before the scans so it sees their events."""
    port = free_port()
    # The cluster's embedded Redis asks for its password: `--cluster` tells Flower where it is.
    env = {**cluster["env"], "FLOWER_UNAUTHENTICATED_API": "true"}
    log = open(cluster["folder"] / "flower.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "stack", "flower", "--port", str(port),
                             "--cluster", str(cluster["folder"])], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    cluster["flower"] = proc
    wait_port("127.0.0.1", port, 120)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthcheck", timeout=5).ok:
                break
        except requests.RequestException:
            pass
        time.sleep(0.5)
    time.sleep(3)  # Flower's event consumer attaches to the broker after the web server is up
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def scans(cluster, flower, vulnerable_repo):
    """20 scans submitted at once through the load balancer, each streamed through the other replica."""
    url = cluster["state"]["url"]
    http = cluster["http"]
    replicas = sorted(cluster["state"]["api"])
    assert replicas == ["api1", "api2"]

    def submit(i: int) -> dict:
        resp = http.post(url + "/v1/security-scans", timeout=60, json={
            "workspace_id": "ws-cluster", "component_id": f"c{i}", "assessment_id": "a-1",
            "git_url": vulnerable_repo["url"], "profile": "smoke"})
        assert resp.status_code == 202, resp.text
        accepted_by = resp.headers["X-Certus-Replica"]
        # The load balancer and the API agree on who answered.
        assert resp.headers["X-Certus-Backend"] == accepted_by
        return {"test_id": resp.json()["test_id"], "accepted_by": accepted_by,
                "stream_url": resp.json()["stream_url"]}

    def watch(scan: dict) -> dict:
        other = next(r for r in replicas if r != scan["accepted_by"])
        ws_url = url.replace("http://", "ws://") + scan["stream_url"]
        result = read_stream(ws_url, timeout=600, headers=[f"X-Certus-Route: {other}",
                                                           f"Authorization: {http.headers['Authorization']}"])
        return {**scan, "stream": result, "streamed_by": result.headers.get("x-certus-backend"), "other": other}

    with ThreadPoolExecutor(max_workers=SCANS) as pool:
        submitted = list(pool.map(submit, range(SCANS)))
        watched = list(pool.map(watch, submitted))
    return watched


def test_twenty_concurrent_scans_stream_through_the_other_replica(cluster, scans):
    http, url = cluster["http"], cluster["state"]["url"]
    store = cluster_redis(cluster)
    assert len(scans) == SCANS and len({s["test_id"] for s in scans}) == SCANS
    # Submissions were spread over both replicas by the load balancer.
    assert {s["accepted_by"] for s in scans} == {"api1", "api2"}
    for scan in scans:
        stream = scan["stream"]
        # Streamed through the replica that did not accept the scan.
        assert scan["streamed_by"] == scan["other"] != scan["accepted_by"]
        assert stream.close_code == 1000, (scan["test_id"], stream.close_code, stream.close_reason)
        ids = [e["id"] for e in stream.events]
        assert ids == sorted(ids, key=_ids_key) and len(set(ids)) == len(ids)
        assert stream.types[0] == "phase" and stream.events[0]["phase"] == "queued"
        assert stream.types[-1] == "scan_complete" and stream.types.count("scan_complete") == 1
        assert stream.events[-1]["status"] == "SUCCEEDED", stream.events[-1]
        assert {"tool_start", "log", "tool_complete"} <= set(stream.types)
        # Complete: the stream holds exactly the stored history.
        stored = http.get(f"{url}/v1/security-scans/{scan['test_id']}/events", params={"limit": 5000},
                          timeout=30).json()
        assert [e["id"] for e in stored["events"]] == ids and stored["complete"]
        record = http.get(f"{url}/v1/security-scans/{scan['test_id']}", timeout=30).json()
        assert record["status"] == "SUCCEEDED"
        worker = json.loads(store.hget(f"ca:scan:{scan['test_id']}", "worker"))  # internal, not in the status
        assert worker.split("@")[0] in ("scans1", "scans2")


def test_stats_agree_on_every_replica(cluster, scans):
    api = cluster["state"]["api"]
    views = [cluster["http"].get(f"http://127.0.0.1:{port}/stats", timeout=30).json() for port in api.values()]
    assert views[0]["scans"] == views[1]["scans"]
    assert views[0]["scans"]["SUCCEEDED"] >= SCANS
    assert views[0]["queue_depth"] == views[1]["queue_depth"] == {"scans": 0, "uploads": 0}
    assert views[0]["workers_online"] == views[1]["workers_online"] == 3


def test_metrics_show_the_scans(cluster, scans):
    state = cluster["state"]
    api_text = [cluster["http"].get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
                for port in state["api"].values()]
    submitted = sum(_total(t, "certus_scans_submitted_total", profile="smoke") for t in api_text)
    assert submitted == SCANS
    assert all(_total(t, "certus_queue_depth", queue="scans") == 0 for t in api_text)
    assert all(_total(t, "certus_workers_online") == 3 for t in api_text)
    assert sum(_total(t, "certus_ws_streams_opened_total") for t in api_text) >= SCANS
    assert all(_total(t, "certus_ws_streams_active") == 0 for t in api_text)
    workers = {name: requests.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
               for name, port in state["worker_metrics"].items()}
    scans_text = [workers["scans1"], workers["scans2"]]
    # Started counts attempts (a restart after a lost worker would add one); finished counts scans.
    assert sum(_total(t, "certus_scans_started_total", profile="smoke") for t in scans_text) >= SCANS
    assert sum(_total(t, "certus_scans_finished_total", status="SUCCEEDED", profile="smoke")
               for t in scans_text) == SCANS
    assert sum(_total(t, "certus_scan_duration_seconds_count", status="SUCCEEDED") for t in scans_text) == SCANS
    assert sum(_total(t, "certus_phase_duration_seconds_count", phase="clone") for t in scans_text) == SCANS
    assert sum(_total(t, "certus_tool_duration_seconds_count", tool="bandit") for t in scans_text) == SCANS
    assert sum(_total(t, "certus_events_appended_total", type="scan_complete") for t in scans_text) == SCANS
    assert _total(workers["uploads1"], "certus_scans_started_total") == 0


def test_flower_lists_the_tasks_by_name_with_ids_only(cluster, flower, scans):
    wanted = {s["test_id"] for s in scans}
    deadline = time.monotonic() + 60
    while True:
        tasks = requests.get(f"{flower}/api/tasks", params={"limit": 1000}, timeout=30).json()
        seen = {tid: t for tid, t in tasks.items() if tid in wanted}
        if len(seen) == SCANS and all(t.get("state") == "SUCCESS" for t in seen.values()):
            break
        assert time.monotonic() < deadline, (len(seen), {t.get("state") for t in seen.values()})
        time.sleep(1)
    for test_id, task in seen.items():
        assert task["name"] == "scans.run"
        # The only argument is the scan's id: nothing secret travels through the broker.
        assert task["args"] in (f"['{test_id}']", f"('{test_id}',)", [test_id])
        assert task["kwargs"] in ("{}", {})


def test_ctrl_c_stops_every_process(cluster, scans):
    proc = cluster["proc"]
    pids = list(cluster["state"]["pids"].values()) + [cluster["state"]["redis_pid"]]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(180) == 0
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        # a zombie already reaped by nobody still counts as gone once its parent exited
        status = Path(f"/proc/{pid}/status")
        assert not status.exists() or "zombie" in status.read_text(), f"process {pid} still runs"
