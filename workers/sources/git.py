"""Git sources: host policy, then a clone in a child process with a deadline."""

from __future__ import annotations

import json
import sys
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
          credentials: tuple[str, str] | None = None,
          should_stop: toolrun.Callable[[], bool] | None = None) -> GitCheckout:
    try:
        check_url(url, settings.git_allowed_hosts, settings.allow_local_sources)
    except HostNotAllowed as exc:
        raise SourceError(exc.code, str(exc)) from exc
    argv = [sys.executable, "-m", "workers.sources.git_clone", "--url", url, "--dest", str(dest),
            "--max-files", str(settings.max_repo_files), "--max-bytes", str(settings.max_repo_bytes)]
    if branch:
        argv += ["--branch", branch]
    if commit:
        argv += ["--commit", commit]
    extra = {"PYTHONPATH": str(Path(__file__).resolve().parents[2]),
             "CERTUS_GIT_ALLOWED_HOSTS": ",".join(settings.git_allowed_hosts)}
    if credentials:
        extra.update({"CERTUS_GIT_USERNAME": credentials[0], "CERTUS_GIT_PASSWORD": credentials[1]})
    result = toolrun.run(argv, cwd=str(dest.parent), timeout=settings.clone_timeout, capture_stdout=True,
                         env=toolrun.scrubbed_env(extra), should_stop=should_stop)
    if result.timed_out:
        raise SourceError("clone_timeout", f"the clone took longer than {settings.clone_timeout} s")
    if result.cancelled:
        raise SourceError("cancelled", "the scan was cancelled during the clone")
    try:
        out = json.loads(result.stdout_tail.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError) as exc:
        raise SourceError("clone_failed", f"the clone process exited {result.exit_code}") from exc
    if "error" in out:
        raise SourceError(out["error"], out["message"])
    return GitCheckout(commit=out["commit"], branch=out.get("branch"))
