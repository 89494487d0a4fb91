"""Helpers the file-based scanner adapters share: finding their input files in a hostile tree
(links are never followed), making reported paths relative, and reading the flagged line."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

SKIP_DIRS = {".git", "node_modules", ".venv", "venv", ".tox", ".nox", "__pycache__", ".mypy_cache",
             "site-packages", "vendor"}
MAX_FILES = 2000
MAX_BYTES = 5 * 1024 * 1024


def walk(root: Path, wanted: Callable[[Path], bool], limit: int = MAX_FILES) -> list[str]:
    """Source-relative posix paths of regular files (not links) that ``wanted`` accepts."""
    out: list[str] = []
    for path in _files(root):
        if wanted(path):
            out.append(path.relative_to(root).as_posix())
            if len(out) >= limit:
                break
    return out


def _files(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if not path.is_symlink() and path.is_file() and path.stat().st_size <= MAX_BYTES:
                yield path


def relative(root: Path, reported: str | None) -> str | None:
    """A path a tool reported, relative to the source root ('/' separated), or None when it lies
    outside. Tools report paths relative to the working folder, to an enclosing git repository,
    absolute, or with a leading '/' meaning the scan root; each is mapped back."""
    if not reported:
        return None
    text = reported.replace("\\", "/")
    if text.startswith("file://"):
        text = text[len("file://"):]
    root = root.resolve()
    candidate = Path(text)
    if candidate.is_absolute():
        try:
            return candidate.resolve().relative_to(root).as_posix()
        except ValueError:
            pass
        # checkov writes '/Dockerfile' for the scan root's Dockerfile; anything else is outside.
        inner = text.lstrip("/")
        return inner if inner and ".." not in inner.split("/") and (root / inner).exists() else None
    parts = [p for p in PurePosixPath(text).parts if p not in ("", ".")]
    if ".." in parts:
        return None
    for start in range(len(parts)):
        rel = "/".join(parts[start:])
        if rel and (root / rel).exists():
            return rel
    return "/".join(parts) or None


def line_text(root: Path, rel: str | None, line: int | None) -> str | None:
    """The flagged source line, stripped (a fingerprint anchor that survives moves)."""
    if not rel or not line or line < 1:
        return None
    path = root / rel
    try:
        if path.is_symlink() or path.stat().st_size > MAX_BYTES:
            return None
        with path.open(encoding="utf-8", errors="replace") as fh:
            for number, text in enumerate(fh, start=1):
                if number == line:
                    return text.strip() or None
    except OSError:
        return None
    return None
