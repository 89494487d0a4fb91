"""Supervision in `make run` and `make cluster`: a process that exits is started again, with a
pause that grows, a line saying so and a limit after which everything stops with a clear message;
Ctrl-C stops everything in order.

The supervisor's rules are checked on small real processes; then `python -m stack cluster` has one
scan worker's main process killed (SIGKILL) while it runs a scan, and an API replica killed while
clients call the load balancer: the scan is taken over and completes exactly once, both processes
are restarted, the cluster keeps answering, and Ctrl-C still stops every process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import requests

from stack.supervisor import CrashLoop, Policy, Supervisor
from tests.support.cluster import output, running_cluster, state, store, wait_workers
from tests.support.gate import GateProxy
from tests.support.ws import read_stream

ROOT = Path(__file__).resolve().parents[2]


def python(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], start_new_session=True)


def alive(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def check_until(sup: Supervisor, predicate, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        sup.check()
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_a_process_that_exits_is_restarted_with_growing_pauses(capsys):
    now = [0.0]
    sup = Supervisor(Policy(first_delay=1, max_delay=4, limit=10, window=1000, stable_after=60),
                     clock=lambda: now[0])
    sup.add("flaky", lambda: python("import sys; sys.exit(3)"))
    pauses = []
    for _ in range(4):
        child = sup.children["flaky"]
        child.proc.wait()  # type: ignore[union-attr]
        sup.check()  # notices the exit
        pauses.append(child.restart_at - now[0])  # type: ignore[operator]
        now[0] = child.restart_at  # type: ignore[assignment]
        sup.check()  # restarts it
        assert child.restart_at is None
    assert pauses == [1, 2, 4, 4]
    err = capsys.readouterr().err
    assert "supervisor: flaky (pid" in err and "exited (exit code 3); restarting it in 1 s" in err
    assert err.count("supervisor: flaky restarted (pid") == 4
    # A process that ran long enough starts over at the shortest pause.
    child = sup.children["flaky"]
    child.proc.wait()  # type: ignore[union-attr]
    now[0] += 61
    sup.check()
    assert child.restart_at - now[0] == 1  # type: ignore[operator]
    now[0] = child.restart_at  # type: ignore[assignment]
    sup.check()
    sup.stop([])


def test_a_crash_loop_gives_up_with_a_clear_message():
    sup = Supervisor(Policy(first_delay=0.01, max_delay=0.05, limit=3, window=60))
    sup.add("worker1", lambda: python("import sys; sys.exit(2)"))
    deadline = time.monotonic() + 30
    with pytest.raises(CrashLoop) as raised:
        while time.monotonic() < deadline:
            sup.check()
            time.sleep(0.01)
    message = str(raised.value)
    assert message.startswith("worker1 (pid ") and "exited (exit code 2)" in message
    assert "4 times within 60 s, more than the limit of 3; giving up" in message
    sup.stop([])


def test_what_a_dead_process_left_behind_is_killed_with_it(tmp_path):
    pid_file = tmp_path / "orphan.pid"
    sup = Supervisor(Policy(first_delay=60))
    sup.add("worker1", lambda: python(f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        time.sleep(600)
    """))
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    orphan = int(pid_file.read_text())
    os.kill(sup.children["worker1"].proc.pid, signal.SIGKILL)  # type: ignore[union-attr]
    check_until(sup, lambda: sup.children["worker1"].restart_at is not None)
    deadline = time.monotonic() + 10
    while alive(orphan):  # the group leader's SIGKILL reaches what it started
        assert time.monotonic() < deadline, "a process of the dead worker was left running"
        time.sleep(0.05)
    sup.stop([])


def test_stopping_goes_in_order_and_restarts_nothing(tmp_path):
    record = tmp_path / "stopped"
    sup = Supervisor(Policy(first_delay=0))
    for name in ("redis", "worker1", "api"):
        sup.add(name, lambda name=name: python(f"""
            import signal, sys, time
            def bye(*_):
                open({str(record)!r}, "a").write({name!r} + "\\n")
                sys.exit(0)
            signal.signal(signal.SIGTERM, bye)
            time.sleep(600)
        """))
    time.sleep(1)  # let each install its handler
    sup.stop(["api", "worker1", "redis"])
    assert record.read_text().split() == ["api", "worker1", "redis"]
    sup.check()
    assert all(c.proc.poll() is not None for c in sup.children.values())  # type: ignore[union-attr]


# -- make cluster ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    # A lapsed lease is noticed within seconds, so the takeover does not take minutes.
    settings = {"CERTUS_ASSURANCE_LEASE_SECONDS": "4", "CERTUS_ASSURANCE_SWEEP_INTERVAL": "2",
                "CERTUS_ASSURANCE_RATE_LIMIT_PER_MINUTE": "60000", "CERTUS_ASSURANCE_RATE_LIMIT_BURST": "5000"}
    with running_cluster(tmp_path_factory.mktemp("supervised"), settings, "--upload-workers", "0",
                         workers=2) as info:
        yield info










def record(cluster, test_id: str) -> dict:
    return {k: json.loads(v) for k, v in store(cluster).hgetall(f"ca:scan:{test_id}").items()}


def wait_restarted(cluster, name: str, old_pid: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while state(cluster)["pids"].get(name) in (None, old_pid):
        assert cluster["proc"].poll() is None, output(cluster)[-3000:]
        assert time.monotonic() < deadline, f"{name} was not restarted: {output(cluster)[-3000:]}"
        time.sleep(0.2)
    return int(state(cluster)["pids"][name])


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_sigkill_of_a_scan_workers_main_process_the_scan_is_taken_over_and_the_worker_restarted(
        cluster, git_server, vulnerable_repo):
    http, url = cluster["http"], cluster["url"]
    gate = GateProxy(git_server.port)
    try:
        gate.close()
        resp = http.post(url + "/v1/security-scans", timeout=60, json={
            "workspace_id": "ws-sup", "component_id": "c", "assessment_id": "a-1",
            "git_url": gate.url("vulnerable"), "profile": "smoke"})
        assert resp.status_code == 202, resp.text
        test_id = resp.json()["test_id"]
        deadline = time.monotonic() + 120
        while record(cluster, test_id).get("status") != "RUNNING":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        victim = record(cluster, test_id)["worker"].split("@")[0]
        old_pid = state(cluster)["pids"][victim]
        os.kill(old_pid, signal.SIGKILL)  # the worker's main process only
        new_pid = wait_restarted(cluster, victim, old_pid)
        assert alive(new_pid) and not alive(old_pid)
        # The cluster keeps serving while the worker comes back.
        assert http.get(url + "/ready", timeout=30).status_code == 200
        gate.open()
        deadline = time.monotonic() + 240
        while (done := http.get(f"{url}/v1/security-scans/{test_id}", timeout=30).json())["status"] not in (
                "SUCCEEDED", "FAILED", "CANCELLED"):
            assert time.monotonic() < deadline, output(cluster)[-3000:]
            time.sleep(0.5)
    finally:
        gate.shutdown()
    assert done["status"] == "SUCCEEDED", done
    stream = read_stream(url.replace("http://", "ws://") + f"/v1/security-scans/{test_id}/stream", timeout=120,
                         headers=[f"Authorization: {http.headers['Authorization']}"])
    assert stream.types.count("scan_complete") == 1 and stream.types[-1] == "scan_complete"
    assert any(e["type"] == "phase" and e["phase"] == "restarted" for e in stream.events)
    final = record(cluster, test_id)
    assert final["attempt"] == 2
    assert (f"supervisor: {victim} (pid {old_pid}) exited (killed by SIGKILL); restarting it in 1 s"
            in output(cluster))
    wait_workers(cluster, 2)  # the restarted worker is back online


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_a_killed_api_replica_is_restarted_and_the_load_balancer_keeps_answering(cluster):
    http, url = cluster["http"], cluster["url"]
    old_pid = state(cluster)["pids"]["api1"]
    os.kill(old_pid, signal.SIGKILL)
    answers = [http.get(url + "/health", timeout=30).status_code for _ in range(20)]
    assert answers == [200] * 20
    wait_restarted(cluster, "api1", old_pid)
    deadline = time.monotonic() + 60
    while True:  # the restarted replica serves again (pinned to it through the load balancer)
        try:
            if http.get(url + "/health", headers={"X-Certus-Route": "api1"}, timeout=10).headers.get(
                    "X-Certus-Backend") == "api1":
                break
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, output(cluster)[-3000:]
        time.sleep(0.5)


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_ctrl_c_still_stops_everything_in_order(cluster):
    proc = cluster["proc"]
    s = state(cluster)
    pids = [p for p in s["pids"].values() if p] + [s["redis_pid"]]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(180) == 0
    out = output(cluster)
    stops = [line.split("stopping ", 1)[1] for line in out.splitlines() if line.startswith("supervisor: stopping ")]
    assert stops[0] == "haproxy" and stops[-1] == "redis"
    assert stops.index("api1") < stops.index("scans1") and stops.index("api2") < stops.index("scans2")
    assert "restarting it" not in out.split("stopping the cluster", 1)[1]
    for pid in pids:
        assert not alive(pid), f"process {pid} still runs"
