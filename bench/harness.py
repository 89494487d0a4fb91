"""Processes for the benchmarks: a fresh Redis, the API under gunicorn and Celery workers, all on
loopback, from the same launchers `make run` uses."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import redis as redis_lib
import requests

from stack import processes
from stack.ports import free_port, wait_port
from stack.redis_server import RedisServer
from tasks.api_keys import KeyStore


class Stack:
    def __init__(self, **env: str) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="certus-bench-"))
        self.redis = RedisServer(self.tmp / "redis", port=free_port())
        self.env: dict[str, str] = {}
        self.extra_env = env
        self.procs: list[subprocess.Popen[bytes]] = []
        self.api_port: int | None = None

    def __enter__(self) -> Stack:
        self.redis.start()
        self.env = {
            "CERTUS_ASSURANCE_REDIS_URL": self.redis.url,
            "CERTUS_ASSURANCE_ARTIFACT_ROOT": str(self.tmp / "artifacts"),
            "CERTUS_ASSURANCE_WORK_ROOT": str(self.tmp / "work"),
            "CERTUS_ASSURANCE_GIT_ALLOWED_HOSTS": "127.0.0.1",
            "CERTUS_ASSURANCE_LOG_LEVEL": "WARNING",
            # The benchmarks measure throughput, not the per-key limits: lift them out of the way.
            "CERTUS_ASSURANCE_RATE_LIMIT_PER_MINUTE": "10000000",
            "CERTUS_ASSURANCE_RATE_LIMIT_BURST": "1000000",
            "CERTUS_ASSURANCE_MAX_QUEUED_PER_WORKSPACE": "1000000",
            "CERTUS_ASSURANCE_MAX_WS_PER_KEY": "100000",
            **self.extra_env,
        }
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
        for proc in reversed(self.procs):
            processes.stop(proc, timeout=20)
        self.redis.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @property
    def client(self) -> redis_lib.Redis:
        return redis_lib.Redis.from_url(self.redis.url, decode_responses=True)

    def api(self, worker_class: str = "gevent") -> str:
        self.api_port = free_port()
        argv = processes.api_argv(f"127.0.0.1:{self.api_port}", worker_class=worker_class, connections=4000,
                                  threads=2100)
        # no access log: the benchmark measures the service, not terminal output
        argv = [*argv[:-1], "--access-logfile", "/dev/null", argv[-1]]
        self.procs.append(processes.spawn(argv, self.env, self.tmp / "api.log"))
        wait_port("127.0.0.1", self.api_port, 60)
        return f"127.0.0.1:{self.api_port}"

    def api_pid(self) -> int:
        """The gunicorn worker process serving requests (the child of the arbiter)."""
        arbiter = psutil.Process(self.procs[-1].pid) if self.procs else None
        assert arbiter is not None
        children = arbiter.children()
        return children[0].pid if children else arbiter.pid

    def worker(self, name: str, *, app: str = "workers.bootstrap", concurrency: int = 2,
               queues: str = "scans,uploads") -> subprocess.Popen[bytes]:
        argv = processes.worker_argv(name, queues, concurrency)
        argv[argv.index("workers.bootstrap")] = app
        proc = processes.spawn(argv, self.env, self.tmp / f"worker-{name}.log")
        self.procs.append(proc)
        return proc

    def wait_workers(self, count: int, timeout: float = 90) -> None:
        client = self.client
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if client.hlen("ca:workers") >= count:
                return
            time.sleep(0.2)
        raise TimeoutError("workers did not come online")


def git_repo(base: Path, files: dict[str, str]) -> Path:
    repo = base / "repo"
    repo.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@b"}
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True, env=env)
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "bench"], cwd=repo, check=True, env=env)
    (repo / ".git" / "git-daemon-export-ok").touch()
    return repo


class GitDaemon:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.proc = subprocess.Popen(["git", "daemon", "--reuseaddr", f"--base-path={base}",
                                      "--listen=127.0.0.1", f"--port={self.port}", str(base)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port("127.0.0.1", self.port)

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def submit(base: str, session: requests.Session, **payload: Any) -> dict[str, Any]:
    body = {"workspace_id": "bench", "component_id": "c", "assessment_id": "a", **payload}
    resp = session.post(f"http://{base}/v1/security-scans", json=body, timeout=30)
    resp.raise_for_status()
    return dict(resp.json())
