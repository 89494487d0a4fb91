"""Starting and stopping the service's own processes: the embedded Redis, API processes (gunicorn)
and Celery workers. ``make run``, ``make cluster``, the tests' ``Service`` and the benchmarks all
start them here, with the command lines of ``stack/processes.py``.

Every process is a child of one ``Supervisor``. A launcher made with ``supervise=True`` (``make
run``, ``make cluster``) has each one that exits started again, by ``check()`` and while it waits;
the tests and the benchmarks use ``supervise=False``, so a process they kill stays dead and a
process that dies while they wait for it is reported at once. ``stop()`` stops the load balancer,
then the APIs, then the workers (warm shutdown: each finishes its running tasks), then Redis.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from stack import processes
from stack.ports import answers
from stack.postgres_server import PostgresServer
from stack.redis_server import RedisServer
from stack.supervisor import Supervisor

Popen = subprocess.Popen[bytes]

# What stop() stops first: nothing new comes in, then nothing new is taken, then the broker goes.
STOP_ORDER = ("balancer", "api", "worker", "database", "redis")


def scratch_env(folder: Path) -> dict[str, str]:
    """Artifact and work folders under ``folder``, for a launch that shares nothing with ``var/``."""
    return {"CERTUS_ASSURANCE_ARTIFACT_ROOT": str(folder / "artifacts"),
            "CERTUS_ASSURANCE_WORK_ROOT": str(folder / "work")}


@dataclass
class Launcher:
    """``env``: every child's settings (over this process's environment); ``start_redis`` adds the
    Redis URL to it. ``logs``: a folder with a ``<name>.log`` per process (None: the children
    write to this process's output). ``metrics``: a Prometheus multiprocess folder per process,
    ``<metrics>/<name>``, emptied at each start. ``new_session``: children in sessions of their
    own, so a terminal's Ctrl-C reaches only the launcher, which stops them itself, in order."""

    env: dict[str, str] = field(default_factory=dict)
    logs: Path | None = None
    metrics: Path | None = None
    new_session: bool = False
    supervise: bool = False
    supervisor: Supervisor = field(default_factory=lambda: Supervisor(quiet=True))
    kinds: dict[str, str] = field(default_factory=dict)
    log_files: dict[str, Path] = field(default_factory=dict)

    def start_redis(self, data_dir: Path, *, port: int | None = None, password: str | None = None) -> RedisServer:
        """The embedded Redis (``stack/redis_server.py``), named ``redis``; restarted on the same
        port, data and password."""
        server = RedisServer(data_dir, port, new_session=self.new_session, password=password)

        def start() -> Popen:
            proc = server.start().proc
            assert proc is not None
            return proc

        self.add("redis", "redis", start, lambda _proc: server.stop())
        self.env["CERTUS_ASSURANCE_REDIS_URL"] = server.url
        return server

    def start_postgres(self, folder: Path, *, password: str) -> PostgresServer:
        """The embedded PostgreSQL of the findings store (``stack/postgres_server.py``), named
        ``postgres``, its data kept in ``folder``; restarted on the same port and data."""
        server = PostgresServer(folder, durable=True, password=password)

        def start() -> Popen:
            server.start()
            assert server.proc is not None
            return server.proc

        self.add("postgres", "database", start, lambda _proc: server.stop())
        self.env["CERTUS_ASSURANCE_DATABASE_URL"] = server.url()
        return server

    def start_api(self, name: str, bind: str, *, workers: int = 1, worker_class: str = "gevent",
                  connections: int = 2000, threads: int = 64, gunicorn_args: Sequence[str] = (),
                  env: dict[str, str] | None = None, log: Path | None = None, stop_timeout: float = 30) -> Popen:
        """gunicorn serving the API on ``bind`` (``host:port``); see ``wait_answers``."""
        argv = processes.api_argv(bind, workers=workers, worker_class=worker_class, connections=connections,
                                  threads=threads, extra=gunicorn_args)
        return self._start(name, "api", argv, env, log, stop_timeout)

    def start_worker(self, name: str, queues: str = "scans,uploads", concurrency: int = 2, *,
                     autoscale: str | None = None, quiet: bool = False, app: str = "workers.bootstrap",
                     env: dict[str, str] | None = None, log: Path | None = None,
                     stop_timeout: float = 60) -> Popen:
        """A Celery worker whose hostname is ``name@<host>``, taking ``queues``."""
        argv = processes.worker_argv(name, queues, concurrency, autoscale=autoscale, quiet=quiet, app=app)
        return self._start(name, "worker", argv, env, log, stop_timeout)

    def add(self, name: str, kind: str, start: Callable[[], Popen],
            stop: Callable[[Popen], None] | None = None) -> Popen:
        """Any other child (``make cluster``'s HAProxy is a ``balancer``); ``kind``, one of
        ``STOP_ORDER``, places it in the stop order."""
        if kind not in STOP_ORDER:
            raise ValueError(f"kind {kind!r} is not one of {STOP_ORDER}")
        children = self.supervisor.children
        if name in children:
            # A name used again (a test starting a worker it killed): the earlier child keeps a
            # name of its own, so stop() still reaches whatever is left of it.
            n = 2
            while f"{name}#{n}" in children:
                n += 1
            children[f"{name}#{n}"] = children.pop(name)
            self.kinds[f"{name}#{n}"] = self.kinds.pop(name)
            if name in self.log_files:
                self.log_files[f"{name}#{n}"] = self.log_files.pop(name)
        self.kinds[name] = kind
        child = self.supervisor.add(name, start, stop)
        assert child.proc is not None
        return child.proc

    def _start(self, name: str, kind: str, argv: list[str], env: dict[str, str] | None, log: Path | None,
               stop_timeout: float) -> Popen:
        log = log or (self.logs / f"{name}.log" if self.logs else None)
        proc = self.add(name, kind, lambda: self._spawn(name, argv, env, log),
                        lambda proc: processes.stop(proc, timeout=stop_timeout))
        if log:
            self.log_files[name] = log
        return proc

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None, log: Path | None) -> Popen:
        # The settings as they are at each (re)start, with a fresh metrics folder.
        full = {**self.env, **(env or {})}
        if self.metrics:
            folder = self.metrics / name
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            full["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
        if log:
            log.parent.mkdir(parents=True, exist_ok=True)
        return processes.spawn(argv, full, log, new_session=self.new_session)

    def proc(self, name: str) -> Popen:
        """The process running as ``name`` now (a restart replaces it)."""
        proc = self.supervisor.children[name].proc
        assert proc is not None
        return proc

    def wait_answers(self, name: str, host: str, port: int, timeout: float) -> None:
        """Until ``name`` accepts connections on ``host:port``. Supervised, the processes are kept
        running meanwhile; otherwise ``name`` exiting ends the wait with its exit."""
        what = f"{name} does not answer on {host}:{port}"
        if self.supervise:
            self.supervisor.wait_until(lambda: answers(host, port), timeout, what)
            return
        proc = self.proc(name)
        deadline = time.monotonic() + timeout
        while not answers(host, port):
            if proc.poll() is not None:
                log = self.log_files.get(name)
                raise RuntimeError(f"{name} exited ({proc.returncode}) before answering on {host}:{port}"
                                   + (f": see {log}" if log else ""))
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} after {timeout:.0f} s")
            time.sleep(0.05)

    def check(self) -> None:
        """Restart what exited (raises CrashLoop when a process keeps exiting); only when supervising."""
        if self.supervise:
            self.supervisor.check()

    def stop(self) -> None:
        """Stop every child in ``STOP_ORDER``, each kind in the order it was started."""
        names = list(self.supervisor.children)
        self.supervisor.stop(sorted(names, key=lambda n: STOP_ORDER.index(self.kinds[n])))
