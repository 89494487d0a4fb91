"""Version ordering per ecosystem and OSV's affected-range rules (introduced / fixed /
last_affected events, plus explicit ``versions`` lists)."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import total_ordering
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


@total_ordering
class SemVer:
    """SemVer 2.0.0 precedence (npm and OSV ``SEMVER`` ranges); build metadata is ignored."""

    def __init__(self, text: str) -> None:
        m = _SEMVER.match(text.strip())
        if not m:
            raise ValueError(f"not a semantic version: {text!r}")
        self.core = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
        self.pre: tuple[tuple[int, int | str], ...] = tuple(
            (0, int(p)) if p.isdigit() else (1, p) for p in (m.group(4) or "").split(".") if p)

    def _key(self) -> tuple[Any, ...]:
        # A release sorts after all of its pre-releases.
        return (self.core, 1 if not self.pre else 0, self.pre)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SemVer) and self._key() == other._key()

    def __lt__(self, other: SemVer) -> bool:
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())


def _pypi(text: str) -> Version:
    return Version(text)


def parser_for(ecosystem: str, range_type: str = "ECOSYSTEM") -> Callable[[str], Any] | None:
    """How to order versions of ``ecosystem``; None when the ecosystem has no known ordering
    (then only explicit ``versions`` lists match)."""
    if range_type == "SEMVER" or ecosystem == "npm":
        return SemVer
    if ecosystem == "PyPI":
        return _pypi
    return None


def normalise_name(ecosystem: str, name: str) -> str:
    return str(canonicalize_name(name)) if ecosystem == "PyPI" else name


def _parse(parse: Callable[[str], Any], text: str) -> Any | None:
    try:
        return parse(text)
    except (InvalidVersion, ValueError):
        return None


def in_range(version: str, events: list[dict[str, str]], parse: Callable[[str], Any]) -> bool:
    """OSV's evaluation: walk the events sorted by version; ``introduced`` opens an affected
    interval, ``fixed`` closes it before that version, ``last_affected`` closes it after."""
    v = _parse(parse, version)
    if v is None:
        return False
    ordered: list[tuple[int, Any, str]] = []
    for event in events:
        for kind in ("introduced", "fixed", "last_affected"):
            if kind not in event:
                continue
            raw = str(event[kind])
            if kind == "introduced" and raw == "0":
                ordered.append((0, None, kind))
                continue
            parsed = _parse(parse, raw)
            if parsed is not None:  # an unreadable bound cannot be placed; it is ignored
                ordered.append((1, parsed, kind))
    ordered.sort(key=lambda e: (e[0], e[1]) if e[1] is not None else (e[0],))
    affected = False
    for _, bound, kind in ordered:
        if kind == "introduced" and (bound is None or v >= bound):
            affected = True
        elif kind == "fixed" and v >= bound:
            affected = False
        elif kind == "last_affected" and v > bound:
            affected = False
    return affected


def is_affected(ecosystem: str, version: str, affected: dict[str, Any]) -> bool:
    """Whether ``version`` falls in one ``affected[]`` entry of an advisory."""
    parse = parser_for(ecosystem)
    for listed in affected.get("versions") or []:
        if listed == version:
            return True
        if parse is not None:
            a, b = _parse(parse, version), _parse(parse, str(listed))
            if a is not None and b is not None and a == b:
                return True
    for rng in affected.get("ranges") or []:
        kind = rng.get("type")
        if kind not in ("ECOSYSTEM", "SEMVER"):
            continue  # GIT ranges name commits, not releases
        range_parse = parser_for(ecosystem, kind)
        if range_parse is not None and in_range(version, rng.get("events") or [], range_parse):
            return True
    return False


def fixed_versions(affected: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for rng in affected.get("ranges") or []:
        if rng.get("type") in ("ECOSYSTEM", "SEMVER"):
            out += [str(e["fixed"]) for e in rng.get("events") or [] if "fixed" in e]
    return sorted(set(out))
