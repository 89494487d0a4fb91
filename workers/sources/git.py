"""Git sources: host policy, then a clone in a child process with a deadline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from tasks import names
from tasks.netpolicy import HostNotAllowed, check_url
from tasks.settings import Settings
from workers import toolrun
from workers.sources.errors import SourceError


@dataclass(frozen=True)
class GitCheckout:
    commit: str
    branch: str | None


def fetch(settings: Settings, url: str, dest: Path, *, branch: str | None, commit: str | None,
          credentials: tuple[str, str] | None = None, ssh_key: str | None = None, full_history: bool = False,
          should_stop: toolrun.Callable[[], bool] | None = None) -> GitCheckout:
    try:
        check_url(url, settings.git_allowed_hosts, settings.allow_local_sources)
    except HostNotAllowed as exc:
        raise SourceError(exc.code, str(exc)) from exc
    job = {"url": url, "dest": str(dest.resolve()), "branch": branch, "commit": commit,
           "max_files": settings.max_repo_files, "max_bytes": settings.max_repo_bytes,
           "allowed_hosts": list(settings.git_allowed_hosts), "full_history": full_history,
           "username": credentials[0] if credentials else None,
           "password": credentials[1] if credentials else None,
           "ssh_key": ssh_key or None, "known_hosts": settings.git_ssh_known_hosts or None}
    watch = _SizeWatch(dest, settings.max_repo_bytes)

    def stop() -> bool:
        return watch.exceeded() or (should_stop is not None and should_stop())

    process = spares.take()
    try:
        result = toolrun.run(CLONE_ARGV, cwd=str(dest.parent), timeout=settings.clone_timeout,
                             capture_stdout=True, should_stop=stop, stdin_data=(json.dumps(job) + "\n").encode(),
                             process=process)
    finally:
        # The next spare loads once this clone is done, while the scan's tools run, instead of
        # taking CPU from the clone the scan is waiting for.
        spares.prepare()
    if result.timed_out:
        raise SourceError("clone_timeout", f"the clone took longer than {settings.clone_timeout} s")
    if watch.over:
        raise SourceError("repository_too_large", f"the repository exceeds {settings.max_repo_bytes} bytes")
    if result.cancelled:
        raise SourceError("cancelled", "the scan was cancelled during the clone")
    try:
        out = json.loads(result.stdout_tail.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError) as exc:
        raise SourceError("clone_failed", f"the clone process exited {result.exit_code}") from exc
    if "error" in out:
        raise SourceError(out["error"], out["message"])
    return GitCheckout(commit=out["commit"], branch=out.get("branch"))


CLONE_ARGV = [sys.executable, "-m", "workers.sources.git_clone"]


class SpareClone:
    """One clone process started ahead of need: by the time a scan needs a clone, Python and
    dulwich are loaded (a third of a small clone's time) and the process only waits for its job.
    A clone uses up the spare; the next one is started when that clone ends and loads while the
    scan's tools run, so back-to-back scans find one ready too. A spare whose worker goes away
    reads end-of-input and exits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spare: subprocess.Popen[bytes] | None = None
        self._owner = 0  # the pid that started the spare: a forked worker child must not share it

    def _usable(self) -> bool:
        return self._spare is not None and self._owner == os.getpid() and self._spare.poll() is None

    def _start(self) -> subprocess.Popen[bytes]:
        env = toolrun.scrubbed_env({"PYTHONPATH": str(Path(__file__).resolve().parents[2])})
        return toolrun.start(CLONE_ARGV, cwd=tempfile.gettempdir(), env=env, stdin=True)

    def prepare(self) -> None:
        """Have a spare ready (at worker start, so the first scan does not wait either)."""
        with self._lock:
            if not self._usable():
                self._spare, self._owner = self._start(), os.getpid()

    def take(self) -> subprocess.Popen[bytes]:
        """The spare, handed over (the caller calls ``prepare`` for the next one when it is
        done), or a process started now if there is none."""
        with self._lock:
            proc = self._spare if self._usable() else None
            self._spare = None
        return proc if proc is not None else self._start()


spares = SpareClone()


def install_spares(app: Celery) -> None:
    """Have a spare ready in every pool process of ``app`` that consumes a scan queue before its
    first scan (each clone then starts the next one)."""

    def prepare(**_: Any) -> None:
        if any(name.startswith(names.SCANS_QUEUE) for name in app.amqp.queues.consume_from):
            spares.prepare()

    worker_process_init.connect(prepare, weak=False)


class _SizeWatch:
    """Measures the clone while it downloads, so an oversized repository is stopped at the limit
    instead of after it has filled the disk. Measures at most once a second."""

    def __init__(self, folder: Path, limit: int) -> None:
        self.folder = folder
        self.limit = limit
        self.over = False
        self._next = 0.0

    def exceeded(self) -> bool:
        now = time.monotonic()
        if self.over or now < self._next:
            return self.over
        self._next = now + 1.0
        total = 0
        for dirpath, _dirs, files in os.walk(self.folder):
            for name in files:
                try:
                    total += os.lstat(os.path.join(dirpath, name)).st_size
                except OSError:
                    continue  # written and renamed while we looked
        self.over = total > self.limit
        return self.over
