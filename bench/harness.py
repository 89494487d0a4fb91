"""Processes for the benchmarks: a fresh Redis, the API under gunicorn and Celery workers, all on
loopback, started by the service's own launcher (``stack/launcher.py``), unsupervised. The suites that scan
serve their repositories with the tests' loopback git server (``tests/support/gitrepos.py``)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import redis as redis_lib
import requests

from stack.launcher import Launcher, scratch_env
from stack.ports import free_port
from tasks import keyspace
from tasks.api_keys import KeyStore


class Stack:
    def __init__(self, **env: str) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="certus-bench-"))
        # Settings added before entering reach every process.
        self.extra_env = env
        self.launcher = Launcher()
        self.api_name: str | None = None

    @property
    def env(self) -> dict[str, str]:
        return self.launcher.env

    def __enter__(self) -> Stack:
        self.env.update({
            **scratch_env(self.tmp),
            "CERTUS_ASSURANCE_GIT_ALLOWED_HOSTS": "127.0.0.1",
            "CERTUS_ASSURANCE_LOG_LEVEL": "WARNING",
            # The benchmarks measure throughput, not the per-key limits: lift them out of the way.
            "CERTUS_ASSURANCE_RATE_LIMIT_PER_MINUTE": "10000000",
            "CERTUS_ASSURANCE_RATE_LIMIT_BURST": "1000000",
            "CERTUS_ASSURANCE_MAX_QUEUED_PER_WORKSPACE": "1000000",
            "CERTUS_ASSURANCE_MAX_WS_PER_KEY": "100000",
            **self.extra_env,
        })
        self.redis = self.launcher.start_redis(self.tmp / "redis")
        self.key, _ = KeyStore(self.client).create("admin", ["*"], name="benchmark")
        return self

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    @property
    def ws_header(self) -> list[str]:
        return [f"Authorization: Bearer {self.key}"]

    def session(self) -> requests.Session:
        session = requests.Session()
        session.headers.update(self.headers)
        return session

    def __exit__(self, *exc: object) -> None:
        self.launcher.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @property
    def client(self) -> redis_lib.Redis:
        return redis_lib.Redis.from_url(self.env["CERTUS_ASSURANCE_REDIS_URL"], decode_responses=True)

    def api(self, worker_class: str = "gevent") -> str:
        port = free_port()
        self.api_name = name = f"api-{port}"
        # no access log: the benchmark measures the service, not terminal output
        self.launcher.start_api(name, f"127.0.0.1:{port}", worker_class=worker_class, connections=4000,
                                threads=2100, gunicorn_args=["--access-logfile", "/dev/null"],
                                log=self.tmp / "api.log", stop_timeout=20)
        self.launcher.wait_answers(name, "127.0.0.1", port, 60)
        return f"127.0.0.1:{port}"

    def api_pid(self) -> int:
        """The gunicorn worker process serving requests (the child of the arbiter)."""
        assert self.api_name is not None, "no API started"
        arbiter = psutil.Process(self.launcher.proc(self.api_name).pid)
        children = arbiter.children()
        return int(children[0].pid if children else arbiter.pid)

    def worker(self, name: str, *, app: str = "workers.bootstrap", concurrency: int = 2,
               queues: str = "scans,uploads") -> subprocess.Popen[bytes]:
        return self.launcher.start_worker(name, queues, concurrency, app=app, log=self.tmp / f"worker-{name}.log",
                                          stop_timeout=20)

    def wait_workers(self, count: int, timeout: float = 90) -> None:
        client = self.client
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if client.hlen(keyspace.WORKERS) >= count:
                return
            time.sleep(0.2)
        raise TimeoutError("workers did not come online")


def submit(base: str, session: requests.Session, **payload: Any) -> dict[str, Any]:
    body = {"workspace_id": "bench", "component_id": "c", "assessment_id": "a", **payload}
    resp = session.post(f"http://{base}/v1/security-scans", json=body, timeout=30)
    resp.raise_for_status()
    return dict(resp.json())
