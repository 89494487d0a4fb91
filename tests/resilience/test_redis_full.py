"""`make run` (``python -m stack run``) when its Redis is full: ``maxmemory`` set below what it
holds, with ``noeviction``, so every write that needs memory is refused.

Two scans run (their clones held at a gate) and a third waits in the queue when Redis fills up.
While it is full the API answers a submit with 503 and the error envelope and ``Retry-After``;
the running scans' writes are refused, so their attempts stop; the worker acknowledges them, takes
the waiting message from the queue, cannot record it, keeps it and stops taking work; it does not
die (before the fix a full Redis ended it twice in a row, and the launcher would have given up).
Once memory is freed, the waiting message is put back and runs, the stopped scans are handed out
again, and each of the three completes exactly once; nothing is left in the broker.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.support.gate import GateProxy
from tests.support.stackrun import StackRun

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def alive(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    # A short lease: scans stopped by the full Redis are handed out again within seconds.
    stack = StackRun(tmp_path_factory.mktemp("full"), extra_env={
        "CERTUS_ASSURANCE_LEASE_SECONDS": "4", "CERTUS_ASSURANCE_SWEEP_INTERVAL": "2"}).start()
    try:
        yield stack
    finally:
        stack.stop()


def status(run: StackRun, test_id: str) -> str:
    return str(json.loads(run.redis().hget(f"ca:scan:{test_id}", "status") or '""'))


def test_a_full_redis_refuses_work_keeps_the_worker_and_loses_nothing(run, git_server, vulnerable_repo):
    client = run.redis()
    worker_pid = run.state()["pids"]["worker1"]
    gate = GateProxy(git_server.port)
    try:
        gate.close()
        ids = [run.submit(git_url=gate.url("vulnerable"), profile="smoke").json()["test_id"] for _ in range(3)]
        deadline = time.monotonic() + 120
        while sorted(status(run, t) for t in ids) != ["QUEUED", "RUNNING", "RUNNING"] or not client.llen("scans"):
            assert time.monotonic() < deadline, [status(run, t) for t in ids]
            time.sleep(0.2)

        client.config_set("maxmemory", 1)  # full: noeviction refuses every write that needs memory
        refused = run.submit(git_url=gate.url("vulnerable"), profile="smoke")
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "redis_unavailable" and refused.headers["Retry-After"]
        gate.open()  # the running scans go on and meet the refusals
        deadline = time.monotonic() + 60
        while "stops taking work" not in run.output():
            assert time.monotonic() < deadline, run.output()[-4000:]
            time.sleep(0.3)
        time.sleep(3)
        assert alive(worker_pid) and run.state()["pids"]["worker1"] == worker_pid
        assert "Unrecoverable error" not in run.output()
        assert client.llen("scans") == 0  # the waiting message is held by the worker, not lost

        client.config_set("maxmemory", 0)  # memory freed
        for test_id in ids:
            record = run.wait_done(test_id, timeout=240)
            assert record["status"] == "SUCCEEDED", record
            events = run.http.get(f"{run.base_url}/v1/security-scans/{test_id}/events",
                                  params={"limit": 5000}, timeout=30).json()["events"]
            assert [e["type"] for e in events].count("scan_complete") == 1
            history = (run.artifact_root / test_id / "logs/stream.jsonl").read_text().splitlines()
            assert [json.loads(line)["type"] for line in history].count("scan_complete") == 1
    finally:
        gate.shutdown()
    assert "put 1 message(s) taken while Redis was full back on their queues" in run.output()
    assert alive(worker_pid) and run.state()["pids"]["worker1"] == worker_pid
    deadline = time.monotonic() + 30
    while client.hlen("unacked") or client.llen("scans"):
        assert time.monotonic() < deadline, (client.hkeys("unacked"), client.lrange("scans", 0, -1))
        time.sleep(0.5)
    after = run.submit(git_url=vulnerable_repo["url"], profile="smoke")
    assert after.status_code == 202 and run.wait_done(after.json()["test_id"])["status"] == "SUCCEEDED"
