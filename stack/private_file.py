"""Secrets of a local run kept in files only their owner can read (mode 0600)."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600, replacing what was there (never through a link)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def read_private(path: Path) -> str | None:
    """The file's text if it is a regular file of ours that nobody else can read or write, else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd) as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
            return None
        return fh.read()


def ensure_secret(path: Path) -> str:
    """A strong random secret kept in ``path``: the one there if it is private, else a new one."""
    existing = (read_private(path) or "").strip()
    if len(existing) >= 32:
        return existing
    value = secrets.token_urlsafe(32)
    write_private(path, value + "\n")
    return value
