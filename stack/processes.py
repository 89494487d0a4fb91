"""Command lines for the API and the workers, and starting and stopping one child process
(``stack/launcher.py`` starts the service's processes with them)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def api_argv(bind: str, *, workers: int = 1, worker_class: str = "gevent", connections: int = 2000,
             threads: int = 64, extra: Sequence[str] = ()) -> list[str]:
    """gunicorn serving the API on ``bind``; ``extra`` options go before the app (later ones win)."""
    argv = [str(BIN / "gunicorn"), "--config", "python:stack.gunicorn_conf", "--bind", bind,
            "--workers", str(workers), "--worker-class", worker_class, "--graceful-timeout", "20", "--timeout", "120",
            # one shared control socket in $HOME would make replicas on one machine clash
            "--no-control-socket",
            # The path without its query string: a stream token in ?token= never reaches a log.
            "--access-logformat", '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss']
    if worker_class == "gevent":
        argv += ["--worker-connections", str(connections)]
    elif worker_class == "gthread":
        # each WebSocket holds a thread; size for many streams
        argv += ["--threads", str(threads), "--worker-connections", str(connections)]
    return [*argv, *extra, "app:create_app()"]


def worker_argv(name: str, queues: str = "scans,uploads", concurrency: int = 2,
                autoscale: str | None = None, quiet: bool = False, app: str = "workers.bootstrap") -> list[str]:
    """A Celery worker: ``concurrency`` pool processes, or ``autoscale="MAX,MIN"`` to grow and shrink.
    ``quiet`` drops the start-up banner (for JSON logs); ``app`` is the composition root (the
    benchmarks start one of their own)."""
    pool = ["--autoscale", autoscale] if autoscale else ["--concurrency", str(concurrency)]
    return [str(BIN / "celery"), *(["--quiet"] if quiet else []), "-A", app, "worker",
            "--queues", queues, *pool,
            "--hostname", f"{name}@%h", "--loglevel", "INFO",
            "--task-events", "--without-mingle", "--without-gossip"]


def spawn(argv: list[str], env: Mapping[str, str], log_path: Path | None = None, *,
          new_session: bool = False) -> subprocess.Popen[bytes]:
    """Start a child. ``new_session`` keeps a terminal's Ctrl-C from reaching it, so the launcher
    can stop its children itself, in order (load balancer, APIs, workers, then Redis)."""
    full_env = {**os.environ, **env}
    full_env["PYTHONPATH"] = str(ROOT) + (os.pathsep + full_env["PYTHONPATH"] if full_env.get("PYTHONPATH")
                                          else "")
    if log_path is None:
        return subprocess.Popen(argv, cwd=ROOT, env=full_env, start_new_session=new_session)
    # The child holds its own copy of the log's descriptor: the launcher's is closed at once.
    with open(log_path, "ab") as out:
        return subprocess.Popen(argv, cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=new_session)


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
