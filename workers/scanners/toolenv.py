"""Helpers the SAST and secrets adapters share: where a tool lives, its version, and the source
line a finding points at (read by the service, so no tool has to echo code back)."""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path, PurePosixPath

from workers.scanners.base import TOOLS_DIR, find_executable
from workers.toolrun import scrubbed_env

SAST_ENV = TOOLS_DIR / "sast"


def executable(name: str) -> str | None:
    """The pinned copy from ``.tools/sast`` (requirements/tools-sast.txt) first, so every scan uses
    the locked version; otherwise the service's environment or PATH."""
    pinned = SAST_ENV / "bin" / name
    if pinned.exists():
        return str(pinned)
    return find_executable(name)


@functools.lru_cache(maxsize=32)
def cli_version(exe: str, *args: str) -> str:
    """The version a tool prints for ``--version`` (first dotted number), cached per executable."""
    try:
        out = subprocess.run([exe, *(args or ("--version",))], capture_output=True, text=True, timeout=60,
                             env=scrubbed_env(), check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    match = re.search(r"\d+\.\d+(?:\.\d+)?", out.stdout or out.stderr)
    return match.group(0) if match else "unknown"


@functools.lru_cache(maxsize=32)
def dist_version(exe: str, dist: str) -> str:
    """The installed version of package ``dist`` in the environment of console script ``exe``,
    read from its metadata: no tool code runs (``semgrep --version`` alone would try the network
    for a version check and wait out its timeouts when there is none)."""
    python = interpreter_of(exe)
    if not python or not Path(python).exists():
        return "unknown"
    code = "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))"
    try:
        out = subprocess.run([python, "-I", "-c", code, dist], capture_output=True, text=True, timeout=60,
                             env=scrubbed_env(), check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def interpreter_of(script: str) -> str | None:
    """The Python a console script runs under (its shebang), to run a helper beside the tool."""
    try:
        with open(script, "rb") as fh:
            first = fh.readline(512).decode("utf-8", "replace").strip()
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    parts = first[2:].split()
    if not parts:
        return None
    if Path(parts[0]).name == "env" and len(parts) > 1:
        return parts[1]
    return parts[0]


def relative_path(root: Path, reported: str) -> str | None:
    """A tool's path as '/'-separated and relative to the source root; None when it lies outside."""
    path = Path(reported)
    if not path.is_absolute():
        path = root / path
    try:
        rel = path.resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return None
    return PurePosixPath(*rel.parts).as_posix() if rel.parts else None


def source_line(root: Path, rel: str | None, line: int | None, limit: int = 400) -> str | None:
    """The stripped text of ``line`` in ``root/rel`` (confined to the root), cut to ``limit`` chars."""
    if not rel or not line or line < 1:
        return None
    path = (root / rel).resolve()
    try:
        path.relative_to(root.resolve())
    except ValueError:
        return None
    try:
        with path.open("r", encoding="utf-8", errors="replace") as fh:
            for number, text in enumerate(fh, start=1):
                if number == line:
                    return text.strip()[:limit] or None
    except OSError:
        return None
    return None


_QUOTED = re.compile(r"""(?P<prefix>[rbuRBUfF]{0,2})(?P<q>'''|\"\"\"|'|")(?P<body>.*?)(?P=q)""")


def mask_literals(text: str | None) -> str | None:
    """``text`` with the contents of every quoted string replaced by ``****``: for findings about
    credentials, whose source line would otherwise carry the secret into reports and events."""
    if text is None:
        return None
    return _QUOTED.sub(lambda m: f"{m.group('prefix')}{m.group('q')}****{m.group('q')}", text)
