"""Scan manifests: parsing, validation and digests, shared by the API (inline manifests are checked
at submit) and the workers (manifests fetched from a path or URI are checked when the scan runs).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from tasks.profiles import builtin
from tasks.textsafe import visible

SEVERITIES = ("critical", "high", "medium", "low", "info")
# The longest `bundle.runtimeCeilingMinutes`: a day. A scan is stopped by the task's own time limit
# long before; a larger figure is a mistake (and one past float range broke the worker's deadline).
MAX_RUNTIME_CEILING_MINUTES = 24 * 60
HIDDEN = "must not contain control, format or bidirectional characters"


def _hidden(text: str) -> bool:
    """Whether a name holds a character not shown as itself (``tasks.textsafe``)."""
    return visible(text) != text


class ManifestInvalid(ValueError):
    """The manifest does not follow the schema; ``errors`` maps a JSON path to its problems."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        first = next(iter(errors.items()))
        super().__init__(f"{first[0]}: {first[1][0]}")


@dataclass(frozen=True)
class ManifestProfile:
    name: str
    tools: tuple[str, ...]
    tool_config: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    raw: dict[str, Any]
    product: str | None
    version: str | None
    owners: tuple[str, ...]
    profiles: dict[str, ManifestProfile]
    runtime_ceiling_minutes: int | None

    def profile(self, name: str) -> ManifestProfile | None:
        return self.profiles.get(name.strip().lower())


def inline_text(obj: dict[str, Any]) -> str:
    """The text an inline manifest is digested as (CONTRACT: sorted-key ``json.dumps``)."""
    return json.dumps(obj, sort_keys=True)


def digest(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


def unwrap(obj: Any) -> Any:
    """Accept the ``{"manifest": {...}}`` wrapper that ``cue export`` produces."""
    if isinstance(obj, dict) and set(obj) == {"manifest"} and isinstance(obj["manifest"], dict):
        return obj["manifest"]
    return obj


def _tool_entry(entry: Any, where: str, errors: dict[str, list[str]]) -> tuple[str, Any] | None:
    if isinstance(entry, str) and entry.strip():
        if _hidden(entry):
            errors.setdefault(where, []).append(HIDDEN)
            return None
        return entry.strip().lower(), None
    if isinstance(entry, dict):
        name = entry.get("id", entry.get("name"))
        if not isinstance(name, str) or not name.strip():
            errors.setdefault(where, []).append("a tool object needs a non-empty `id` or `name`")
            return None
        if _hidden(name):
            errors.setdefault(where, []).append(HIDDEN)
            return None
        config = entry.get("config")
        if config is not None and not isinstance(config, dict):
            errors.setdefault(f"{where}.config", []).append("must be an object")
            return None
        return name.strip().lower(), config
    errors.setdefault(where, []).append("a tool is a name or an object with `id`/`name`")
    return None


def parse(obj: Any) -> Manifest:
    obj = unwrap(obj)
    errors: dict[str, list[str]] = {}
    if not isinstance(obj, dict):
        raise ManifestInvalid({"$": ["a manifest is a JSON object"]})
    for key in ("product", "version"):
        if key in obj and not isinstance(obj[key], str | int | float):
            errors.setdefault(key, []).append("must be a string")
        elif isinstance(obj.get(key), str) and _hidden(obj[key]):
            errors.setdefault(key, []).append(HIDDEN)
    owners = obj.get("owners", [])
    if not isinstance(owners, list) or not all(isinstance(o, str) for o in owners):
        errors.setdefault("owners", []).append("must be a list of strings")
        owners = []
    elif any(_hidden(o) for o in owners):
        errors.setdefault("owners", []).append(HIDDEN)
        owners = []
    profiles: dict[str, ManifestProfile] = {}
    raw_profiles = obj.get("profiles", [])
    if not isinstance(raw_profiles, list):
        errors.setdefault("profiles", []).append("must be a list")
        raw_profiles = []
    for i, prof in enumerate(raw_profiles):
        where = f"profiles[{i}]"
        if not isinstance(prof, dict):
            errors.setdefault(where, []).append("must be an object")
            continue
        name = prof.get("name")
        if not isinstance(name, str) or not name.strip():
            errors.setdefault(f"{where}.name", []).append("required, a non-empty string")
            continue
        if _hidden(name):
            errors.setdefault(f"{where}.name", []).append(HIDDEN)
            continue
        tools: list[str] = []
        config: dict[str, Any] = {}
        raw_tools = prof.get("tools", [])
        if not isinstance(raw_tools, list):
            errors.setdefault(f"{where}.tools", []).append("must be a list")
            raw_tools = []
        for j, entry in enumerate(raw_tools):
            parsed = _tool_entry(entry, f"{where}.tools[{j}]", errors)
            if parsed:
                tools.append(parsed[0])
                if parsed[1] is not None:
                    config[parsed[0]] = parsed[1]
        thresholds: dict[str, int] = {}
        raw_thresholds = prof.get("thresholds", {})
        if not isinstance(raw_thresholds, dict):
            errors.setdefault(f"{where}.thresholds", []).append("must be an object")
            raw_thresholds = {}
        for sev, value in raw_thresholds.items():
            if sev not in SEVERITIES:
                errors.setdefault(f"{where}.thresholds.{visible(sev)}", []).append(
                    f"unknown severity; use one of {', '.join(SEVERITIES)}")
            elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
                errors.setdefault(f"{where}.thresholds.{visible(sev)}", []).append("must be an integer >= 0")
            else:
                thresholds[sev] = value
        profiles[name.strip().lower()] = ManifestProfile(name.strip(), tuple(tools), config, thresholds)
    ceiling = None
    bundle = obj.get("bundle", {})
    if not isinstance(bundle, dict):
        errors.setdefault("bundle", []).append("must be an object")
    elif "runtimeCeilingMinutes" in bundle:
        value = bundle["runtimeCeilingMinutes"]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_RUNTIME_CEILING_MINUTES:
            errors.setdefault("bundle.runtimeCeilingMinutes", []).append(
                f"must be an integer from 1 to {MAX_RUNTIME_CEILING_MINUTES}")
        else:
            ceiling = value
    if errors:
        raise ManifestInvalid(errors)
    return Manifest(obj, _str_or_none(obj.get("product")), _str_or_none(obj.get("version")),
                    tuple(owners), profiles, ceiling)


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def profile_known(name: str, manifest: Manifest | None) -> bool:
    return builtin(name) is not None or (manifest is not None and manifest.profile(name) is not None)
