"""``python -m stack run`` as an operator starts it (``make run``): the launcher, its embedded Redis,
the API and one worker, each a real process. The run's folder holds ``run.json`` (pids) and the
embedded Redis's data and password."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import requests

from stack.ports import free_port
from tests.support.service import base_env

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class StackRun:
    tmp: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)
    http: requests.Session = field(default_factory=requests.Session)

    @property
    def var(self) -> Path:
        return self.tmp / "var"

    @property
    def log(self) -> Path:
        return self.tmp / "stack-run.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def artifact_root(self) -> Path:
        return self.tmp / "artifacts"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CERTUS_ASSURANCE_")}
        env.update(base_env(self.tmp, ""))
        del env["CERTUS_ASSURANCE_REDIS_URL"]  # unset: `make run` embeds its own Redis
        del env["CERTUS_ASSURANCE_LEASE_SECONDS"]  # `make run`'s own lease and sweep timing
        env["CERTUS_ASSURANCE_ADMIN_KEY_FILE"] = str(self.var / "admin-key")
        env["PYTHONPATH"] = str(ROOT)
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 180) -> StackRun:
        self.tmp.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "ab")  # noqa: SIM115 - the launcher's output, closed with it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stack", "run", "--bind", f"127.0.0.1:{self.port}",
             "--redis-port", str(self.redis_port), "--folder", str(self.var)],
            cwd=ROOT, env=self.env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        deadline = time.monotonic() + timeout
        while not (self.var / "run.json").exists() or "Certus Assurance API on" not in self.output():
            assert self.proc.poll() is None, self.output()
            assert time.monotonic() < deadline, f"`stack run` did not start: {self.output()}"
            time.sleep(0.3)
        self.http.headers["Authorization"] = "Bearer " + (self.var / "admin-key").read_text().strip()
        self.wait_ready(deadline - time.monotonic())
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def state(self) -> dict[str, Any]:
        return dict(json.loads((self.var / "run.json").read_text()))

    def redis_password(self) -> str:
        return (self.var / "redis-password").read_text().strip()

    def redis(self) -> redis.Redis:
        """A client of the embedded Redis, with its password."""
        return redis.Redis(host="127.0.0.1", port=self.redis_port, password=self.redis_password(),
                           decode_responses=True)

    def wait_ready(self, timeout: float = 120) -> None:
        """Until ``/ready`` answers 200 and a worker has reported in."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.http.get(self.base_url + "/ready", timeout=10).status_code == 200:
                    stats = self.http.get(self.base_url + "/stats", timeout=10).json()
                    if stats.get("workers_online", 0) >= 1:
                        return
            except (requests.RequestException, ValueError):
                pass
            assert time.monotonic() < deadline, f"`stack run` is not ready: {self.output()[-4000:]}"
            time.sleep(0.3)

    def submit(self, **payload: Any) -> requests.Response:
        body = {"workspace_id": "ws-run", "component_id": "comp", "assessment_id": "a-1", **payload}
        return self.http.post(self.base_url + "/v1/security-scans", json=body, timeout=60)

    def status(self, test_id: str) -> dict[str, Any]:
        return dict(self.http.get(f"{self.base_url}/v1/security-scans/{test_id}", timeout=60).json())

    def wait_done(self, test_id: str, timeout: float = 300) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                record = self.status(test_id)
                if record.get("status") in ("SUCCEEDED", "FAILED", "CANCELLED"):
                    return record
            except (requests.RequestException, ValueError):
                pass  # Redis may be restarting: the API answers 503
            assert time.monotonic() < deadline, f"scan {test_id} did not finish: {self.output()[-4000:]}"
            time.sleep(0.3)

    def stop(self, timeout: float = 120) -> int | None:
        """Ctrl-C, as an operator stops it; the launcher stops its children in order."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise
