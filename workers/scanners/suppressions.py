"""What a scanned repository did to switch a tool's checks off, none of which a scan honours.

Every scanner runs with the service's own configuration and with inline suppressions disabled, so
a repository can add findings but never remove them. What the repository tried is still reported,
never dropped silently: its own configuration files of the tool (``tool_config_ignored``) and its
inline suppression comments (``inline_suppression_ignored``) become scan warnings, are listed in
the tool's details in ``summary.json``, and each finding on a line that carries such a comment gets
``properties.suppression_ignored``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.textsafe import visible
from workers.scanners.base import Finding, ToolOutput
from workers.scanners.sourcefiles import MAX_BYTES, walk

CONFIG_IGNORED = "tool_config_ignored"
INLINE_IGNORED = "inline_suppression_ignored"
LISTED = 10  # paths named in a warning message; summary.json details hold up to DETAILED
DETAILED = 200


@dataclass
class Suppressions:
    """A tool's ignored configuration files and inline suppression comments (path -> count)."""

    tool: str
    marker: str  # what the tool's inline comments look like, for the message (e.g. "# noqa")
    config_files: list[str] = field(default_factory=list)
    inline: dict[str, int] = field(default_factory=dict)

    def add_inline(self, path: str, count: int = 1) -> None:
        if count > 0:
            self.inline[path] = self.inline.get(path, 0) + count

    def warnings(self) -> list[dict[str, str]]:
        out = []
        if self.config_files:
            out.append({"code": CONFIG_IGNORED, "message": (
                f"{self.tool}: the repository's own configuration was not used (a scanned repository cannot "
                f"switch checks off): {_listing(self.config_files)}")})
        if self.inline:
            total = sum(self.inline.values())
            out.append({"code": INLINE_IGNORED, "message": (
                f"{self.tool}: {total} inline suppression comment{'s' if total != 1 else ''} ({self.marker}) "
                f"not honoured, in {_listing(sorted(self.inline))}")})
        return out

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.config_files:
            out["config_files_ignored"] = [visible(p) for p in self.config_files[:DETAILED]]
        if self.inline:
            out["inline_suppressions_ignored"] = {visible(p): n for p, n in sorted(self.inline.items())[:DETAILED]}
        return out

    def apply(self, output: ToolOutput) -> ToolOutput:
        """``output`` with the warnings (also as notes, for the scan's log) and details added."""
        for warning in self.warnings():
            output.warnings.append(warning)
            output.notes.append(warning["message"])
        details = self.details()
        if details:
            output.details["suppressions"] = details
        return output


def _listing(paths: list[str]) -> str:
    shown = ", ".join(visible(p) for p in paths[:LISTED])
    return shown + (f" and {len(paths) - LISTED} more" if len(paths) > LISTED else "")


# -- finding a tool's configuration files ---------------------------------------------------------

def named(*names: str) -> Callable[[Path], bool]:
    """Files with one of these names, anywhere in the tree."""
    wanted = set(names)
    return lambda path: path.name in wanted


def with_section(name: str, *headers: str) -> Callable[[Path], bool]:
    """Files named ``name`` that hold one of these section headers (``[tool.ruff``...): shared
    files such as pyproject.toml count only when they configure the tool."""
    encoded = [h.encode() for h in headers]

    def wanted(path: Path) -> bool:
        if path.name != name:
            return False
        try:
            data = path.read_bytes()
        except OSError:
            return False
        return any(h in data for h in encoded)
    return wanted


def config_files(root: Path, *rules: Callable[[Path], bool]) -> list[str]:
    """Source-relative paths of the files any of ``rules`` accepts (links are not followed)."""
    return walk(root, lambda path: any(rule(path) for rule in rules))


# -- inline suppression comments ------------------------------------------------------------------

def count_comments(root: Path, paths: Iterable[str], pattern: re.Pattern[str]) -> dict[str, int]:
    """For each source-relative path, how many of its lines ``pattern`` matches (files that are
    links, missing or too large are left out)."""
    out: dict[str, int] = {}
    for rel in paths:
        path = root / rel
        try:
            if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_BYTES:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        text = data.decode("utf-8", "replace")
        if not pattern.search(text):
            continue
        count = sum(1 for line in text.splitlines() if pattern.search(line))
        if count:
            out[rel] = count
    return out


def lines_of(root: Path, rel: str | None) -> list[str]:
    """The lines of a source file inside ``root`` (none for a link, a missing or an oversized file)."""
    if not rel:
        return []
    path = root / rel
    try:
        path.resolve().relative_to(root.resolve())
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_BYTES:
            return []
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except (OSError, ValueError):
        return []


def mark(findings: list[Finding], root: Path, pattern: re.Pattern[str], *, before: bool = False) -> None:
    """Set ``properties.suppression_ignored`` on each finding whose flagged line (or, with
    ``before``, the line above it) carries a suppression comment that was not honoured."""
    cache: dict[str, list[str]] = {}
    for finding in findings:
        if not finding.path or not finding.line or finding.line < 1:
            continue
        lines = cache.setdefault(finding.path, lines_of(root, finding.path))
        near = lines[finding.line - 1: finding.line]
        if before and finding.line > 1:
            near += lines[finding.line - 2: finding.line - 1]
        if any(pattern.search(text) for text in near):
            finding.properties["suppression_ignored"] = True
