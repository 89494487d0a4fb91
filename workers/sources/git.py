"""Git sources: host policy, then a clone in a child process with a deadline."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tasks.netpolicy import HostNotAllowed, check_url
from tasks.settings import Settings
from workers import toolrun
from workers.sources.errors import SourceError


@dataclass(frozen=True)
class GitCheckout:
    commit: str
    branch: str | None


def fetch(settings: Settings, url: str, dest: Path, *, branch: str | None, commit: str | None,
          credentials: tuple[str, str] | None = None, full_history: bool = False,
          should_stop: toolrun.Callable[[], bool] | None = None) -> GitCheckout:
    try:
        check_url(url, settings.git_allowed_hosts, settings.allow_local_sources)
    except HostNotAllowed as exc:
        raise SourceError(exc.code, str(exc)) from exc
    argv = [sys.executable, "-m", "workers.sources.git_clone", "--url", url, "--dest", str(dest),
            "--max-files", str(settings.max_repo_files), "--max-bytes", str(settings.max_repo_bytes)]
    for host in settings.git_allowed_hosts:
        argv += ["--allowed-host", host]
    if branch:
        argv += ["--branch", branch]
    if commit:
        argv += ["--commit", commit]
    if full_history:
        argv.append("--full-history")
    extra = {"PYTHONPATH": str(Path(__file__).resolve().parents[2]),
             "CERTUS_GIT_ALLOWED_HOSTS": ",".join(settings.git_allowed_hosts)}
    if credentials:
        extra.update({"CERTUS_GIT_USERNAME": credentials[0], "CERTUS_GIT_PASSWORD": credentials[1]})
    watch = _SizeWatch(dest, settings.max_repo_bytes)

    def stop() -> bool:
        return watch.exceeded() or (should_stop is not None and should_stop())

    result = toolrun.run(argv, cwd=str(dest.parent), timeout=settings.clone_timeout, capture_stdout=True,
                         env=toolrun.scrubbed_env(extra), should_stop=stop)
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
