"""`python -m stack cluster` (what `make cluster` runs) started for a test: its own folder, free
port and embedded Redis, an authenticated session with the admin key it creates, and Ctrl-C at the
end."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
import requests

from stack.launcher import scratch_env
from stack.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


def output(cluster: dict[str, Any]) -> str:
    folder: Path = cluster["folder"]
    return (folder / "cluster-stdout.log").read_text(errors="replace")


def state(cluster: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads((cluster["folder"] / "cluster.json").read_text()))


def store(cluster: dict[str, Any]) -> redis.Redis:
    """The cluster's embedded Redis, with the password the cluster generated for it."""
    s = state(cluster)
    return redis.Redis.from_url(s["redis_url"], password=Path(s["redis_password_file"]).read_text().strip(),
                                decode_responses=True, socket_timeout=10)


def wait_workers(cluster: dict[str, Any], count: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if cluster["http"].get(cluster["url"] + "/stats", timeout=10).json()["workers_online"] >= count:
                return
        except (requests.RequestException, ValueError, KeyError):
            pass
        assert time.monotonic() < deadline, f"{count} workers not online: {output(cluster)[-3000:]}"
        time.sleep(0.5)


@contextmanager
def running_cluster(folder: Path, settings: dict[str, str], *args: str,
                    workers: int = 3) -> Iterator[dict[str, Any]]:
    """The cluster with ``settings`` (beside the test defaults) and extra command-line ``args``;
    yields ``proc``, ``folder``, ``url``, ``http``, ``state`` and ``env`` once ``workers`` are online."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTUS_ASSURANCE_")}
    env.update({
        # No REDIS_URL: the cluster starts its own embedded Redis, as `make cluster` does.
        "CERTUS_ASSURANCE_GIT_ALLOWED_HOSTS": "127.0.0.1",
        **scratch_env(folder),
        "PYTHONPATH": str(ROOT),
        **settings,
    })
    log = (folder / "cluster-stdout.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "stack", "cluster", "--bind", f"127.0.0.1:{port}",
                             "--folder", str(folder), *args], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    info: dict[str, Any] = {"proc": proc, "folder": folder, "url": f"http://127.0.0.1:{port}", "env": env}
    try:
        deadline = time.monotonic() + 240
        while not (folder / "cluster.json").exists():
            assert proc.poll() is None, output(info)
            assert time.monotonic() < deadline, "the cluster did not start; see " + str(folder)
            time.sleep(0.5)
        info["state"] = state(info)
        http = requests.Session()
        # `make cluster` creates an admin key on first start; every call here uses it.
        http.headers["Authorization"] = "Bearer " + Path(info["state"]["admin_key_file"]).read_text().strip()
        info["http"] = http
        wait_workers(info, workers)
        yield info
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(180)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
        _remove_database_stand_in(folder)


def _remove_database_stand_in(folder: Path) -> None:
    """The cluster's PostgreSQL data, when it lived outside the test's folder (a folder only root
    may enter holds it out of the server user's reach; stack/postgres_server.py)."""
    where = folder / "postgres" / "WHERE"
    if where.exists():
        shutil.rmtree(where.read_text().rsplit(" ", 1)[1].strip(), ignore_errors=True)
