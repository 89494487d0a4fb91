"""Command lines for the API and the workers, shared by `make run`, `make cluster` and the tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def api_argv(bind: str, *, workers: int = 1, worker_class: str = "gevent", connections: int = 2000,
             threads: int = 64) -> list[str]:
    argv = [str(BIN / "gunicorn"), "--bind", bind, "--workers", str(workers), "--worker-class", worker_class,
            "--graceful-timeout", "20", "--timeout", "120", "--access-logfile", "-",
            # The path without its query string: a stream token in ?token= never reaches a log.
            "--access-logformat", '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss']
    if worker_class == "gevent":
        argv += ["--worker-connections", str(connections)]
    elif worker_class == "gthread":
        # each WebSocket holds a thread; size for many streams
        argv += ["--threads", str(threads), "--worker-connections", str(connections)]
    return argv + ["app:create_app()"]


def worker_argv(name: str, queues: str = "scans,uploads", concurrency: int = 2) -> list[str]:
    return [str(BIN / "celery"), "-A", "workers.bootstrap", "worker", "--queues", queues,
            "--concurrency", str(concurrency), "--hostname", f"{name}@%h", "--loglevel", "INFO",
            "--task-events", "--without-mingle", "--without-gossip"]


def spawn(argv: list[str], env: Mapping[str, str], log_path: Path | None = None) -> subprocess.Popen[bytes]:
    full_env = {**os.environ, **env}
    full_env["PYTHONPATH"] = str(ROOT) + (os.pathsep + full_env["PYTHONPATH"] if full_env.get("PYTHONPATH")
                                          else "")
    out = open(log_path, "ab") if log_path else None  # noqa: SIM115 - handed to the child
    return subprocess.Popen(argv, cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT if out else None)


def stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM the process itself (never its group: Celery's warm shutdown needs only the main
    process signalled), then wait, then kill."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
