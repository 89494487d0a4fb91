"""`make run` (``python -m stack run``, its embedded Redis, the API and one worker) rides out a
Redis restart while scans run: Redis is stopped with SIGTERM and started again by the launcher on
the same data folder after 3 s and after 30 s (shorter than a lease, so running scans need not
start again).

In each outage two scans are caught at known points: one mid-clone (its clone held by a gated
proxy, let through once Redis is down), one mid-tool (its scanner frozen with SIGSTOP the moment
it starts, let go once Redis is down), so both clone and tool finish while Redis is away and
their writes wait for it. Each scan then completes exactly once, on its first attempt; the
worker is the one that was running before (it did not die restoring its unacknowledged message);
the broker holds no message left unacknowledged or queued twice.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import requests

from tests.support.gate import GateProxy
from tests.support.gitrepos import GitDaemon, make_repo
from tests.support.stackrun import StackRun

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "vulnerable-python"
TOOL = "bandit"


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = [int(p) for p in (task / "children").read_text().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "zombie" not in status


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """A repository for the scans (the planted fixture, with more files so the scanner runs a
    little longer), served by git daemon directly and through a gate."""
    daemon = GitDaemon(tmp_path_factory.mktemp("git")).start()
    files = {p.relative_to(FIXTURE).as_posix(): p.read_text() for p in FIXTURE.rglob("*") if p.is_file()}
    app = next(text for name, text in files.items() if name.endswith(".py"))
    files.update({f"pkg/mod{i}.py": app for i in range(40)})
    make_repo(daemon.base, "resilience", files)
    gate = GateProxy(daemon.port)
    try:
        yield daemon, gate
    finally:
        gate.shutdown()
        daemon.stop()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    stack = StackRun(tmp_path_factory.mktemp("run")).start()
    try:
        yield stack
    finally:
        stack.stop()


def internal(run: StackRun, test_id: str) -> dict:
    return {k: json.loads(v) for k, v in run.redis().hgetall(f"ca:scan:{test_id}").items()}


def freeze_tool_when_it_starts(run: StackRun, test_id: str, timeout: float = 120) -> list[int]:
    """SIGSTOP the scan's scanner process(es) as soon as they exist; returns their pids."""
    deadline = time.monotonic() + timeout
    pool_pid = None
    while time.monotonic() < deadline:
        if pool_pid is None:
            record = internal(run, test_id)
            pool_pid = record.get("worker_pid") if record.get("status") == "RUNNING" else None
            continue
        tools = [p for p in descendants(pool_pid) if TOOL in cmdline(p)]
        if tools:
            for pid in tools:
                os.kill(pid, signal.SIGSTOP)
            return tools
        time.sleep(0.005)
    raise TimeoutError(f"{TOOL} of {test_id} never started")


def stop_redis_for(run: StackRun, seconds: float, meanwhile) -> None:
    """SIGTERM the embedded Redis and keep it down about ``seconds``: the launcher, which would
    start it again within a second, is held (SIGSTOP) until then; released, it restarts Redis on
    the same port, data folder and password. ``meanwhile()`` runs once Redis is down."""
    launcher = run.proc.pid  # type: ignore[union-attr]
    pid = run.state()["redis_pid"]
    os.kill(launcher, signal.SIGSTOP)
    try:
        os.kill(pid, signal.SIGTERM)
        started = time.monotonic()
        deadline = started + 30
        while alive(pid):
            assert time.monotonic() < deadline, "redis-server did not stop"
            time.sleep(0.05)
        meanwhile()
        time.sleep(max(0.0, seconds - 1 - (time.monotonic() - started)))  # the launcher waits 1 s more
    finally:
        os.kill(launcher, signal.SIGCONT)
    deadline = time.monotonic() + 60
    while run.state()["redis_pid"] in (None, pid):
        assert time.monotonic() < deadline, f"the launcher did not restart Redis: {run.output()[-3000:]}"
        time.sleep(0.2)


def assert_completed_once(run: StackRun, test_id: str) -> dict:
    record = run.wait_done(test_id, timeout=300)
    assert record["status"] == "SUCCEEDED", record
    events = run.http.get(f"{run.base_url}/v1/security-scans/{test_id}/events", params={"limit": 5000},
                          timeout=30).json()["events"]
    assert [e["type"] for e in events].count("scan_complete") == 1
    assert events[-1]["type"] == "scan_complete"
    bundle = run.artifact_root / test_id
    history = [json.loads(line) for line in (bundle / "logs/stream.jsonl").read_text().splitlines()]
    assert [e["type"] for e in history].count("scan_complete") == 1
    # Rode out the outage: no second attempt, no restart.
    full = internal(run, test_id)
    assert full["attempt"] == 1, full
    assert not any(e["type"] == "phase" and e.get("phase") in ("restarted", "requeued") for e in events)
    return full


@pytest.mark.parametrize(("point", "down"), [("clone", 3), ("tool", 3), ("clone", 30), ("tool", 30)])
def test_redis_restart_mid_scan(run, sources, point, down):
    """One scan at a time, as the reported failure had it: the worker's other pool slot is free,
    so its consumer has a read pending on the broker when Redis goes away."""
    daemon, gate = sources
    worker_pid = run.state()["pids"]["worker1"]
    frozen: list[int] = []
    if point == "clone":
        gate.close()
        held = gate.connections
        test_id = run.submit(git_url=gate.url("resilience"), profile="smoke").json()["test_id"]
        deadline = time.monotonic() + 120
        while gate.connections == held:  # the clone has reached the gate and waits there
            assert time.monotonic() < deadline, "the clone never reached the gate"
            time.sleep(0.05)
    else:
        test_id = run.submit(git_url=daemon.url("resilience"), profile="smoke").json()["test_id"]
        frozen = freeze_tool_when_it_starts(run, test_id)

    def meanwhile() -> None:
        answer = run.http.get(f"{run.base_url}/v1/security-scans/{test_id}", timeout=30)
        assert answer.status_code == 503 and answer.json()["error"]["code"] == "redis_unavailable"
        assert answer.headers["Retry-After"]
        time.sleep(1)
        gate.open()  # the clone goes on while Redis is away
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)  # and so does the scanner: its output waits for Redis

    stop_redis_for(run, down, meanwhile)
    assert_completed_once(run, test_id)
    # The same worker process ran the scan through the outage.
    assert alive(worker_pid) and run.state()["pids"]["worker1"] == worker_pid
    assert "Unrecoverable error" not in run.output()
    assert run.proc is not None and run.proc.poll() is None
    assert "supervisor: redis (pid" in run.output() and "supervisor: redis restarted" in run.output()
    # Nothing left behind in the broker: no message unacknowledged, none queued again.
    client = run.redis()
    deadline = time.monotonic() + 30
    while client.hlen("unacked") or client.llen("scans"):
        assert time.monotonic() < deadline, (client.hkeys("unacked"), client.lrange("scans", 0, -1))
        time.sleep(0.5)
    # The service still takes new scans.
    after = run.submit(git_url=daemon.url("resilience"), profile="smoke")
    assert after.status_code == 202, after.text
    assert run.wait_done(after.json()["test_id"])["status"] == "SUCCEEDED"


def test_the_api_answers_again_after_the_restarts(run):
    assert run.http.get(run.base_url + "/ready", timeout=30).status_code == 200
    with pytest.raises(requests.HTTPError):
        # An unauthenticated client still gets nothing from the restarted Redis's data.
        requests.get(run.base_url + "/v1/security-scans", timeout=30).raise_for_status()
