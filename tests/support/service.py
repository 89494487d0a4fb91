"""The whole service on loopback: a real Redis, real Celery workers and the API under gunicorn,
started by the service's own launcher (``stack/launcher.py``), unsupervised: a process a test
kills stays dead."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen
from typing import Any

import requests

from stack import processes
from stack.launcher import Launcher, scratch_env
from stack.ports import free_port
from tasks.api_keys import KeyStore
from tasks.redis_client import connect
from tasks.settings import Settings


@dataclass
class Service:
    env: dict[str, str]
    workdir: Path
    api_ports: list[int] = field(default_factory=list)
    # Every process this service stops at the end; a test may add one it started itself.
    procs: list[Popen[bytes]] = field(default_factory=list)
    # Every test talks to the API through this session, so credentials can be added in one place.
    http: requests.Session = field(default_factory=requests.Session)
    ws_headers: list[str] = field(default_factory=list)
    api_key: str = ""

    launcher: Launcher = field(init=False)

    def __post_init__(self) -> None:
        self.launcher = Launcher(self.env)
        # An admin key for every workspace, so every test is authenticated without saying so.
        if not self.api_key:
            self.api_key = self.create_key("admin", ["*"], name="test harness")
        self.http.headers["Authorization"] = f"Bearer {self.api_key}"
        self.ws_headers[:] = [f"Authorization: Bearer {self.api_key}"]

    def create_key(self, role: str, workspaces: list[str], name: str = "test") -> str:
        """A new API key in this service's Redis (plain text, as a client would hold it)."""
        # The service's own settings: TLS and Sentinel URLs need them to connect.
        settings = Settings.from_env(self.env)
        client = connect(settings.redis_url, settings=settings)
        try:
            plain, _ = KeyStore(client).create(role, workspaces, name=name)
        finally:
            client.close()
        return plain

    def client(self, api_key: str) -> requests.Session:
        """A session authenticated with another key."""
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {api_key}"
        return session

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_ports[0]}"

    def url(self, path: str, replica: int = 0) -> str:
        return f"http://127.0.0.1:{self.api_ports[replica]}{path}"

    def ws_url(self, path: str, replica: int = 0) -> str:
        return f"ws://127.0.0.1:{self.api_ports[replica]}{path}"

    @property
    def artifact_root(self) -> Path:
        return Path(self.env["CERTUS_ASSURANCE_ARTIFACT_ROOT"])

    def start_api(self, worker_class: str = "gevent") -> int:
        port = free_port()
        name = f"api-{port}"
        self.procs.append(self.launcher.start_api(name, f"127.0.0.1:{port}", worker_class=worker_class,
                                                  log=self.workdir / f"{name}.log", stop_timeout=20))
        self.launcher.wait_answers(name, "127.0.0.1", port, 60)
        self.api_ports.append(port)
        return port

    def start_worker(self, name: str, queues: str = "scans,uploads", concurrency: int = 2,
                     quiet: bool = False) -> Popen[bytes]:
        proc = self.launcher.start_worker(name, queues, concurrency, quiet=quiet,
                                          log=self.workdir / f"worker-{name}.log", stop_timeout=20)
        self.procs.append(proc)
        return proc

    def wait_workers(self, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                stats = self.http.get(self.url("/stats"), timeout=30).json()
            except requests.RequestException:
                stats = {"workers_online": 0}  # a busy machine: a new process can be slow to answer
            if stats.get("workers_online", 0) >= count:
                return
            time.sleep(0.3)
        raise TimeoutError(f"{count} workers did not come online; see {self.workdir}")

    def stop(self) -> None:
        """The APIs, then the workers; then any process a test added to ``procs``."""
        self.launcher.stop()
        for proc in reversed(self.procs):
            processes.stop(proc, timeout=20)

    def submit(self, replica: int = 0, **payload: Any) -> requests.Response:
        body = {"workspace_id": "ws-test", "component_id": "comp", "assessment_id": "a-1", **payload}
        return self.http.post(self.url("/v1/security-scans", replica), json=body, timeout=60)

    def status(self, test_id: str) -> dict[str, Any]:
        return dict(self.http.get(self.url(f"/v1/security-scans/{test_id}"), timeout=60).json())

    def wait_done(self, test_id: str, timeout: float = 240) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = self.status(test_id)
            if record["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
                return record
            time.sleep(0.2)
        raise TimeoutError(f"scan {test_id} did not finish: {self.status(test_id)['status']}")


def base_env(tmp: Path, redis_url: str, **extra: str) -> dict[str, str]:
    env = {
        "CERTUS_ASSURANCE_REDIS_URL": redis_url,
        **scratch_env(tmp),
        "CERTUS_ASSURANCE_GIT_ALLOWED_HOSTS": "127.0.0.1",
        "CERTUS_ASSURANCE_LEASE_SECONDS": "6",
        # Each test service generates its own signing key pair on first use, here.
        "CERTUS_ASSURANCE_SIGNING_KEY_DIR": str(tmp / "keys"),
        "COSIGN_PASSWORD": "test-signing-password",
        # The fixed OSV snapshot, so dependency scans never depend on what a machine has in var/osv.
        "CERTUS_ASSURANCE_OSV_DB_PATH": str(Path(__file__).resolve().parents[1] / "fixtures" / "osv"),
        # Tests poll hard; the limits have tests of their own that set them explicitly.
        "CERTUS_ASSURANCE_RATE_LIMIT_PER_MINUTE": "60000",
        "CERTUS_ASSURANCE_RATE_LIMIT_BURST": "5000",
    }
    env.update(extra)
    for key in list(os.environ):
        if key.startswith("CERTUS_ASSURANCE_") and key not in env:
            env[key] = os.environ[key]
    # The findings store of this service alone, never var/ of the checkout.
    env.setdefault("CERTUS_ASSURANCE_DATABASE_URL", f"sqlite:///{tmp / 'certus.db'}")
    return env
