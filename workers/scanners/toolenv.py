"""Versions of scanners that live in their own environments under ``.tools/<name>/``."""

from __future__ import annotations

import re
import subprocess

from workers.toolrun import scrubbed_env

_VERSION = re.compile(r"(\d+\.\d+(?:\.\d+)*)")


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
