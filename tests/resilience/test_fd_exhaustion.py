"""The API runs out of file descriptors: new connections are answered 503 `too_many_connections`
(never left hanging), the process does not die, the streams already open keep receiving their
events, and once connections close the API serves again. The limit is real: the API is started as
`make run` starts it, under `prlimit --nofile`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
import requests
import websocket

from stack import processes
from stack.ports import free_port, wait_port
from tasks.events import EventLog
from tests.support.service import Service, base_env

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

DB = 14
LIMIT = 64
ROOT = Path(__file__).resolve().parents[2]


def _worker_pid(master: int) -> int:
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout.split()
    assert len(out) == 1, out
    return int(out[0])


@pytest.fixture(scope="module")
def limited_api(redis_url: str,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, subprocess.Popen[bytes]]]:
    tmp = tmp_path_factory.mktemp("fd-exhaustion")
    db_url = redis_url.rsplit("/", 1)[0] + f"/{DB}"
    redis.Redis.from_url(db_url).flushdb()
    svc = Service(env=base_env(tmp, db_url), workdir=tmp)
    port = free_port()
    argv = ["prlimit", f"--nofile={LIMIT}:{LIMIT}", "--", *processes.api_argv(f"127.0.0.1:{port}")]
    proc = processes.spawn(argv, svc.env, tmp / "api.log")
    try:
        wait_port("127.0.0.1", port, 60)
        svc.api_ports.append(port)
        yield svc, proc
    finally:
        processes.stop(proc, timeout=30)
        redis.Redis.from_url(db_url).flushdb()


def _open_stream(svc: Service, test_id: str, after: str = "0-0") -> websocket.WebSocket:
    return websocket.create_connection(svc.ws_url(f"/v1/security-scans/{test_id}/stream?after={after}"),
                                       timeout=20, header=svc.ws_headers)


def _receive(ws: websocket.WebSocket, count: int) -> list[dict]:
    return [json.loads(ws.recv()) for _ in range(count)]


def _is_refused(resp: requests.Response) -> bool:
    return (resp.status_code == 503 and resp.json()["error"]["code"] == "too_many_connections"
            and resp.headers["Retry-After"] == "5")


def test_out_of_descriptors_new_connections_are_refused_streams_go_on_and_the_api_recovers(limited_api):
    svc, master = limited_api
    worker = _worker_pid(master.pid)
    resp = svc.submit(git_url="https://127.0.0.1:1/none.git", profile="smoke")  # no worker takes it
    assert resp.status_code == 202, resp.text
    test_id = resp.json()["test_id"]
    events = EventLog(redis.Redis.from_url(svc.env["CERTUS_ASSURANCE_REDIS_URL"], decode_responses=True))
    first = events.append(test_id, "log", message="before the limit")

    # Streams until the process has no room for another one: the next handshake is answered 503.
    streams: list[websocket.WebSocket] = []
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        for _ in range(LIMIT):
            streams.append(_open_stream(svc, test_id))
    assert refused.value.status_code == 503
    assert json.loads(refused.value.resp_body)["error"]["code"] == "too_many_connections"
    assert len(streams) >= 10
    for ws in streams:
        assert [e["type"] for e in _receive(ws, 2)] == ["phase", "log"]  # queued, then ours

    # More clients at once: each is answered at once, none waits in the listen queue.
    def call(_: int) -> requests.Response:
        return requests.get(svc.url("/health"), timeout=10)

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(call, range(20)))
    assert all(_is_refused(a) for a in answers), [(a.status_code, a.text[:80]) for a in answers]

    # The streams already open keep receiving what is appended meanwhile.
    sent = [events.append(test_id, "log", message=f"at the limit {i}") for i in range(5)]
    for ws in streams:
        assert [e["id"] for e in _receive(ws, 5)] == sent

    # Connections close: the API serves again, in the same process.
    for ws in streams[:6]:
        ws.close()
    deadline = time.monotonic() + 30
    while (ready := requests.get(svc.url("/ready"), timeout=10)).status_code != 200:
        assert time.monotonic() < deadline, ready.text
        time.sleep(0.2)
    late = _open_stream(svc, test_id, after=first)
    assert [e["id"] for e in _receive(late, 5)] == sent
    assert svc.submit(git_url="https://127.0.0.1:1/other.git", profile="smoke").status_code == 202
    assert master.poll() is None and _worker_pid(master.pid) == worker

    # Every stream still open gets the end of the scan exactly once and closes normally.
    final = events.append(test_id, "scan_complete", status="FAILED")
    for ws in [*streams[6:], late]:
        assert [e["id"] for e in _receive(ws, 1)] == [final]
        opcode, frame = ws.recv_data_frame(True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(frame.data[:2], "big") == 1000
        ws.close()
    log = (svc.workdir / "api.log").read_text()
    assert "Too many open files" not in log and "Traceback" not in log
    assert "out of file descriptors (limit 64): answered" in log


def test_at_the_hard_limit_the_reserved_descriptor_answers_503_and_serving_resumes(tmp_path):
    """Past the margin (the Redis connections of open requests used it up), accept fails with
    EMFILE: the reserved descriptor is given up to answer the connection, then taken back."""
    port = free_port()
    script = textwrap.dedent(f"""
        from gevent import monkey; monkey.patch_all()
        import os, resource, signal, sys
        resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))
        from stack.fd_shedding import SheddingStreamServer

        def handle(sock, _addr):
            sock.recv(4096)
            sock.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\nConnection: close\\r\\n\\r\\nok")

        server = SheddingStreamServer(("127.0.0.1", {port}), handle)
        server.start()
        hog = []
        try:
            while True:
                hog.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            pass
        signal.signal(signal.SIGUSR1, lambda *_: [os.close(fd) for fd in hog[:16]])
        print("full", flush=True)
        server.serve_forever()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=open(tmp_path / "stderr", "wb"), env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"full\n"
        for _ in range(3):
            assert _is_refused(requests.get(f"http://127.0.0.1:{port}/", timeout=10))
        os.kill(proc.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while True:
            resp = requests.get(f"http://127.0.0.1:{port}/", timeout=10)
            if resp.status_code == 200:
                break
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert resp.text == "ok" and proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
    assert "Traceback" not in (tmp_path / "stderr").read_text()
