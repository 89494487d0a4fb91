"""Git sources: host policy, then a clone in a child process with a deadline."""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from tasks import names
from tasks.netpolicy import HostNotAllowed, check_local_source, check_url, is_local_source
from tasks.settings import Settings
from workers import toolrun
from workers.sandbox import Confinement, Sandbox, SandboxUnavailable, service_python, tool_paths
from workers.sizewatch import SizeWatch
from workers.sources import credentials
from workers.sources.base import FetchContext, FetchedSource
from workers.sources.errors import SourceError


@dataclass(frozen=True)
class GitCheckout:
    commit: str
    branch: str | None
    default_branch: str | None = None  # the remote's HEAD


def fetch_git(ctx: FetchContext) -> FetchedSource:
    """The ``git`` source kind's fetcher (``tasks.sources.git``): a checkout of the branch or commit."""
    settings = ctx.settings
    url = ctx.values.get("git_url") or ""
    if is_local_source(url):
        # The API checked this at submit; the folder (or a link on its way) may have changed since.
        # The clone is given the real folder, so no link swapped in later redirects it.
        try:
            url = check_local_source(url, settings.allow_local_sources, settings.allowed_source_roots)
        except HostNotAllowed as exc:
            raise SourceError(exc.code, str(exc)) from exc
    creds = credentials.for_source(settings, ctx.record.workspace_id, url)
    if creds is not None and creds.token:
        # Registered before anything runs, so no event, log line or error can carry it.
        ctx.redactor.add(creds.token)
    checkout = fetch(settings, url, ctx.dest, branch=ctx.values.get("branch"), commit=ctx.values.get("commit"),
                     credentials=(creds.username, creds.token) if creds and creds.token else None,
                     ssh_key=creds.ssh_key if creds else None, should_stop=ctx.should_stop,
                     full_history=ctx.full_history)
    return FetchedSource("git", commit=checkout.commit, branch=checkout.branch, default_branch=checkout.default_branch,
                         written_by_worker=False)


def fetch(settings: Settings, url: str, dest: Path, *, branch: str | None, commit: str | None,
          credentials: tuple[str, str] | None = None, ssh_key: str | None = None, full_history: bool = False,
          should_stop: Callable[[], bool] | None = None) -> GitCheckout:
    try:
        check_url(url, settings.git_allowed_hosts, settings.allow_local_sources)
    except HostNotAllowed as exc:
        raise SourceError(exc.code, str(exc)) from exc
    key_text = _read_key(ssh_key)
    spare = spares.take(settings)
    job = {"url": url, "dest": str(spare.folder / "src"), "branch": branch, "commit": commit,
           "max_files": settings.max_repo_files, "max_bytes": settings.max_repo_bytes,
           "allowed_hosts": list(settings.git_allowed_hosts), "full_history": full_history,
           "username": credentials[0] if credentials else None,
           "password": credentials[1] if credentials else None,
           "ssh_key_data": key_text, "known_hosts": known_hosts(settings)}
    watch = SizeWatch(spare.folder, settings.max_repo_bytes)

    def stop() -> bool:
        return watch.exceeded() or (should_stop is not None and should_stop())

    try:
        try:
            result = toolrun.run(CLONE_ARGV, cwd=str(spare.folder), timeout=settings.clone_timeout,
                                 capture_stdout=True, should_stop=stop,
                                 stdin_data=(json.dumps(job) + "\n").encode(), process=spare.process)
        finally:
            # The next spare loads once this clone is done, while the scan's tools run, instead of
            # taking CPU from the clone the scan is waiting for.
            spares.prepare(settings)
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
        # The clone wrote only into its own folder; the checkout moves into the scan's workspace.
        os.replace(spare.folder / "src", dest)
    finally:
        shutil.rmtree(spare.folder, ignore_errors=True)
    return GitCheckout(commit=out["commit"], branch=out.get("branch"), default_branch=out.get("default_branch"))


def _read_key(path: str | None) -> str | None:
    """A deploy key's text, handed to the clone on its input: the sandboxed clone cannot see the
    key's file (nor any other file of the worker)."""
    if not path:
        return None
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError("git_auth_failed", "the workspace's ssh key cannot be read") from exc


def known_hosts(settings: Settings) -> str | None:
    """The only host keys ssh trusts: GIT_SSH_KNOWN_HOSTS, else the worker user's own file."""
    if settings.git_ssh_known_hosts:
        return settings.git_ssh_known_hosts
    own = Path.home() / ".ssh" / "known_hosts"
    return str(own) if own.is_file() else None


CLONE_ARGV = [sys.executable, "-m", "workers.sources.git_clone"]


@dataclass
class Spare:
    process: subprocess.Popen[bytes]
    folder: Path  # the only folder the clone may write: it clones into ``folder/src``
    settings: Settings


class SpareClone:
    """One clone process started ahead of need: by the time a scan needs a clone, Python and
    dulwich are loaded (a third of a small clone's time) and the process only waits for its job.
    A clone uses up the spare; the next one is started when that clone ends and loads while the
    scan's tools run, so back-to-back scans find one ready too. A spare whose worker goes away
    reads end-of-input and exits.

    Each clone runs in a sandbox of its own (``workers.sandbox``): it may use the network, but the
    only folder it sees writable is its own, and nothing of the service is in view."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spare: Spare | None = None
        self._owner = 0  # the pid that started the spare: a forked worker child must not share it

    def _usable(self, settings: Settings) -> bool:
        spare = self._spare
        return (spare is not None and self._owner == os.getpid() and spare.process.poll() is None
                and spare.settings == settings)

    def _start(self, settings: Settings) -> Spare:
        folder = Path(settings.work_root) / ".clones" / secrets.token_hex(8)
        folder.mkdir(parents=True)
        sandbox = Sandbox(settings)
        sandbox.give(folder)
        visible: list[Path] = [*service_python(), *tool_paths(CLONE_ARGV)]
        if settings.allow_local_sources:
            visible += [Path(root) for root in settings.allowed_source_roots if Path(root).is_dir()]
        hosts_file = known_hosts(settings)
        if hosts_file and Path(hosts_file).is_file():
            visible.append(Path(hosts_file))
        env = toolrun.scrubbed_env({"PYTHONPATH": str(Path(__file__).resolve().parents[2])})
        argv, env = sandbox.wrap(CLONE_ARGV, Confinement(read_only=tuple(visible), writable=(folder,),
                                                         network=True, env=env), folder)
        return Spare(toolrun.start(argv, cwd=str(folder), env=env, stdin=True), folder, settings)

    def _discard(self, spare: Spare | None) -> None:
        if spare is not None:
            if spare.process.poll() is None:
                spare.process.kill()
                spare.process.wait()
            shutil.rmtree(spare.folder, ignore_errors=True)

    def prepare(self, settings: Settings | None = None) -> None:
        """Have a spare ready (at worker start, so the first scan does not wait either)."""
        settings = settings or Settings.from_env()
        with self._lock:
            if not self._usable(settings):
                if self._owner == os.getpid():
                    self._discard(self._spare)
                self._spare, self._owner = self._start(settings), os.getpid()

    def take(self, settings: Settings) -> Spare:
        """The spare, handed over (the caller calls ``prepare`` for the next one when it is
        done), or a process started now if there is none."""
        with self._lock:
            spare = self._spare if self._usable(settings) else None
            if spare is None and self._owner == os.getpid():
                self._discard(self._spare)
            self._spare = None
        return spare if spare is not None else self._start(settings)


spares = SpareClone()


def install_spares(app: Celery) -> None:
    """Have a spare ready in every pool process of ``app`` that consumes a scan queue before its
    first scan (each clone then starts the next one). A worker that cannot create the sandbox says
    so, with the fix, the moment it starts; each scan it takes then fails with
    ``sandbox_unavailable`` instead of running anything unconfined."""

    def prepare(**_: Any) -> None:
        if not any(name.startswith(names.SCANS_QUEUE) for name in app.amqp.queues.consume_from):
            return
        log = logging.getLogger(__name__)
        settings = Settings.from_env()
        try:
            Sandbox(settings).check()
        except SandboxUnavailable as exc:
            log.critical("this worker refuses scans: %s", exc)
            return
        try:
            spares.prepare(settings)
        except Exception:  # noqa: BLE001 - a scan starts its clone itself and reports why it cannot
            log.exception("no spare clone process could be prepared")

    worker_process_init.connect(prepare, weak=False)
