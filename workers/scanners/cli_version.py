"""Finding a scanner in its own pinned environment (``.tools/<env>/bin``), and its version."""

from __future__ import annotations

import re
import subprocess
from functools import cache

from workers.scanners.base import TOOLS_DIR, Scanner, find_executable
from workers.toolrun import scrubbed_env

_VERSION = re.compile(r"(\d+\.\d+(?:\.\d+)*)")


def pinned_executable(env: str, name: str) -> str | None:
    """``.tools/<env>/bin/<name>`` (installed from requirements/tools-<env>.txt) first, so scans use
    the locked version and not a same-named program of another environment; else the usual search."""
    candidate = TOOLS_DIR / env / "bin" / name
    return str(candidate) if candidate.exists() else find_executable(name)


@cache
def version_of(exe: str | None, *args: str) -> str:
    """The first dotted version number ``exe args`` prints, or ``unknown``."""
    if not exe:
        return "unknown"
    try:
        out = subprocess.run([exe, *args], capture_output=True, text=True, timeout=60, env=scrubbed_env(),
                             check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    m = _VERSION.search(out.stdout + out.stderr)
    return m.group(1) if m else "unknown"


class PinnedCli(Scanner):
    """The part every scanner that is one pinned command-line program shares: ``program`` found
    in its tool environment ``env`` (``.tools/<env>/bin``), its version from ``version_args``, and
    the skip reason when it is not installed."""

    env: str
    program: str
    version_args: tuple[str, ...] = ("--version",)

    def executable(self) -> str | None:
        return pinned_executable(self.env, self.program)

    def unavailable_reason(self) -> str | None:
        return None if self.executable() else f"{self.program} is not installed (make tools)"

    def version(self) -> str:
        return version_of(self.executable(), *self.version_args)
