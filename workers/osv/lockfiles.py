"""Pinned dependencies from lock and requirements files: requirements*.txt (``==`` pins),
poetry.lock, Pipfile.lock, uv.lock and npm's package-lock.json.

The source tree is hostile: links are never followed, files stay inside the root, and
oversized files are skipped.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_FILE_BYTES = 20 * 1024 * 1024
SKIP_DIRS = {".git", "node_modules", ".venv", "venv", ".tox", ".nox", "__pycache__", ".mypy_cache",
             "site-packages"}


@dataclass(frozen=True)
class Dependency:
    ecosystem: str
    name: str
    version: str
    path: str  # lock file, relative to the source root
    line: int | None
    snippet: str | None


@dataclass
class Inventory:
    dependencies: list[Dependency]
    files: list[str]
    unpinned: list[dict[str, Any]]  # requirements lines that pin no exact version
    errors: list[dict[str, str]]


def _kind(name: str) -> str | None:
    if name in ("poetry.lock", "Pipfile.lock", "uv.lock", "package-lock.json"):
        return name
    if name.endswith(".txt") and name.startswith("requirements"):
        return "requirements"
    return None


def discover(root: Path) -> Iterator[tuple[str, Path]]:
    """(kind, path) of every lock file under ``root``; links and oversized files are skipped."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        here = Path(dirpath)
        for name in sorted(filenames):
            kind = _kind(name)
            if kind is None and here.name == "requirements" and name.endswith(".txt"):
                kind = "requirements"
            if kind is None:
                continue
            path = here / name
            if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
                continue
            yield kind, path


_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(===?)\s*([^\s;#\\,]+)\s*(?:[;#\\].*)?$")
_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def parse_requirements(text: str, rel: str) -> tuple[list[Dependency], list[dict[str, Any]]]:
    deps, unpinned = [], []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", "-", "--")) or "://" in line or line.startswith(("git+", ".", "/")):
            continue
        m = _REQ.match(line)
        if m and "*" not in m.group(4):
            deps.append(Dependency("PyPI", m.group(1), m.group(4), rel, number, line.split("#")[0].strip()
                                   .rstrip("\\").strip()))
        elif _REQ_NAME.match(line):
            unpinned.append({"path": rel, "line": number, "requirement": line.split("#")[0].strip()})
    return deps, unpinned


def _line_of(lines: list[str], *needles: str, start: int = 0) -> int | None:
    for i in range(start, len(lines)):
        if all(n in lines[i] for n in needles):
            return i + 1
    return None


def parse_toml_lock(text: str, rel: str) -> list[Dependency]:
    """poetry.lock and uv.lock: ``[[package]]`` tables with name and version. The project's own
    package (uv's editable/virtual source) and packages from local paths or git are skipped."""
    data = tomllib.loads(text)
    lines = text.splitlines()
    deps = []
    cursor = 0
    for pkg in data.get("package") or []:
        name, version = pkg.get("name"), pkg.get("version")
        source = pkg.get("source") or {}
        if not name or not version or not isinstance(source, dict):
            continue
        if any(k in source for k in ("editable", "virtual", "directory", "path", "git")) or \
                source.get("type") in ("directory", "file", "git"):
            continue
        line = _line_of(lines, f'name = "{name}"', start=cursor)
        if line:
            cursor = line
        deps.append(Dependency("PyPI", str(name), str(version), rel, line, f"{name}=={version}"))
    return deps


def parse_pipfile_lock(text: str, rel: str) -> list[Dependency]:
    data = json.loads(text)
    lines = text.splitlines()
    deps = []
    for section in ("default", "develop"):
        for name, spec in (data.get(section) or {}).items():
            version = str((spec or {}).get("version", "")) if isinstance(spec, dict) else ""
            if not version.startswith("=="):
                continue
            version = version.lstrip("=")
            deps.append(Dependency("PyPI", name, version, rel, _line_of(lines, f'"{name}"'), f"{name}=={version}"))
    return deps


def parse_package_lock(text: str, rel: str) -> list[Dependency]:
    data = json.loads(text)
    lines = text.splitlines()
    deps: dict[tuple[str, str], Dependency] = {}

    def add(name: str, version: Any) -> None:
        if not name or not isinstance(version, str) or ":" in version or "/" in version:
            return  # links, git and file dependencies carry no registry version
        key = (name, version)
        if key not in deps:
            deps[key] = Dependency("npm", name, version, rel, _line_of(lines, f'"{name}"'), f"{name}@{version}")

    packages = data.get("packages")
    if isinstance(packages, dict):  # lockfileVersion 2 and 3
        for path, meta in packages.items():
            if not path or not isinstance(meta, dict) or meta.get("link"):
                continue
            add(meta.get("name") or path.rsplit("node_modules/", 1)[-1], meta.get("version"))
    else:  # lockfileVersion 1: nested "dependencies"
        stack = [data.get("dependencies") or {}]
        while stack:
            level = stack.pop()
            for name, meta in level.items():
                if isinstance(meta, dict):
                    add(name, meta.get("version"))
                    stack.append(meta.get("dependencies") or {})
    return list(deps.values())


def inventory(root: Path) -> Inventory:
    root = root.resolve()
    inv = Inventory([], [], [], [])
    for kind, path in discover(root):
        rel = path.relative_to(root).as_posix()
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
            if kind == "requirements":
                deps, unpinned = parse_requirements(text, rel)
                inv.unpinned += unpinned
            elif kind in ("poetry.lock", "uv.lock"):
                deps = parse_toml_lock(text, rel)
            elif kind == "Pipfile.lock":
                deps = parse_pipfile_lock(text, rel)
            else:
                deps = parse_package_lock(text, rel)
        except (ValueError, tomllib.TOMLDecodeError, OSError) as exc:
            inv.errors.append({"path": rel, "error": f"{exc.__class__.__name__}: {str(exc)[:200]}"})
            continue
        inv.files.append(rel)
        inv.dependencies += deps
    return inv
