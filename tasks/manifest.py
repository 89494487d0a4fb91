"""Scan manifests: parsing, validation and digests, shared by the API (inline manifests are checked
at submit) and the workers (manifests fetched from a path or URI are checked when the scan runs).

The manifest format is a JSON Schema (draft 2020-12), ``tasks/schemas/manifest.schema.json``, served
at ``GET /schemas/manifest.json`` so editors can check manifests, and the service validates with it
(``jsonschema``). Each part of the schema carries the service's message for a value that breaks it
(``errorMessage``, the keyword editors such as VS Code show); an error is reported at the nearest
part that has one, so messages name schema paths and never repeat a value of the document. After
the schema, the checks it cannot express: no hidden characters in the names (``tasks.textsafe``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

from jsonschema import Draft202012Validator, ValidationError, validators

from tasks.profiles import builtin
from tasks.textsafe import visible

SCHEMA_RESOURCE = files("tasks").joinpath("schemas", "manifest.schema.json")
SCHEMA: dict[str, Any] = json.loads(SCHEMA_RESOURCE.read_text(encoding="utf-8"))
_DEFS: dict[str, Any] = SCHEMA["$defs"]
# The longest `bundle.runtimeCeilingMinutes`: a day. A scan is stopped by the task's own time limit
# long before; a larger figure is a mistake (and one past float range broke the worker's deadline).
MAX_RUNTIME_CEILING_MINUTES: int = \
    _DEFS["manifest"]["properties"]["bundle"]["properties"]["runtimeCeilingMinutes"]["maximum"]
# Hostile documents cost little. One nesting deeper than MAX_DEPTH is refused before the schema is
# applied (one linear pass; the API has already refused a request body nesting deeper than
# MAX_JSON_DEPTH), so neither the validator nor its messages recurse past Python's limit. A list
# longer than its ``maxItems`` ends the check at once, before any of its entries is looked at (the
# schema puts ``maxItems`` before ``items`` and keywords apply in the schema's order), so those
# limits bound the work on a valid manifest; and after MAX_ERRORS errors the rest is left unchecked.
MAX_DEPTH = 128
MAX_ERRORS = 200
HIDDEN = "must not contain control, format or bidirectional characters"
OUTSIDE = "has fields outside the manifest schema"


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
    # The most *new* findings of each severity (not seen by the scan's baseline) the policy allows.
    new_findings: dict[str, int] = field(default_factory=dict)


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


# -- the schema check --------------------------------------------------------------------------------
def _is_integer(_: Any, instance: Any) -> bool:
    """A JSON integer as written: ``15``, not ``15.0`` (which JSON Schema alone would take)."""
    return isinstance(instance, int) and not isinstance(instance, bool)


_Validator = validators.extend(
    Draft202012Validator, type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer))


def _inline(node: Any) -> Any:
    """``node`` with every ``{"$ref": "#/$defs/..."}`` replaced by the definition it names. The
    service validates with this copy: the same schema, without a reference lookup for each tool
    of each profile (which makes a large manifest several times slower to check)."""
    if isinstance(node, list):
        return [_inline(v) for v in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        if set(node) != {"$ref"}:
            raise ValueError(f"a $ref with other keywords beside it: {sorted(node)}")
        return _inline(_DEFS[node["$ref"].removeprefix("#/$defs/")])
    return {k: _inline(v) for k, v in node.items()}


# A manifest, unwrapped (the schema's `manifest` definition), as the service checks it.
_MANIFEST: dict[str, Any] = _inline(_DEFS["manifest"])
_VALIDATOR = _Validator(_MANIFEST)


def _path(parts: list[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f"{'.' if out else ''}{visible(part)}"
    return out or "$"


def _reported(error: ValidationError) -> tuple[str, str]:
    """Where and how ``error`` is reported: at the nearest part of the schema on its way that has an
    ``errorMessage``, with that message. A missing property is reported at the property when the
    property has a message of its own; an unknown field, or a list too long, at what holds it."""
    instance_path = list(error.absolute_path)
    keys = list(error.absolute_schema_path)
    node: dict[str, Any] = _MANIFEST
    where: list[Any] = []
    reported: tuple[list[Any], str] = ([], node["errorMessage"])
    i = 0
    while True:
        if "errorMessage" in node:
            reported = (list(where), node["errorMessage"])
        if i >= len(keys) - 1:  # keys[-1] is the keyword that failed, in ``node``
            break
        key = keys[i]
        if key == "properties":
            node, i = node[key][keys[i + 1]], i + 2
            where.append(instance_path[len(where)])
        elif key in ("items", "additionalProperties"):
            node, i = node[key], i + 1
            where.append(instance_path[len(where)])
        elif key == "propertyNames":  # the error is about a key, which is then its instance
            node, i = node[key], i + 1
            where.append(error.instance)
        elif key in ("allOf", "anyOf", "oneOf"):
            node, i = node[key][keys[i + 1]], i + 2
        else:  # then / else: the same value
            node, i = node[key], i + 1
    keyword = error.validator
    if keyword == "maxItems":
        return _path(where), f"must have at most {error.validator_value} entries"
    if keyword == "additionalProperties" and error.validator_value is False:
        return _path(where), (f"not a scan manifest: it {OUTSIDE}" if not where else OUTSIDE)
    if keyword == "required":
        for name in error.validator_value:
            own = node.get("properties", {}).get(name, {}).get("errorMessage")
            if name not in error.instance and own:
                return _path([*where, name]), own
    return _path(reported[0]), reported[1]


def _deeper_than(obj: Any, limit: int) -> bool:
    """Whether ``obj`` nests lists and objects deeper than ``limit`` (``{}`` is one level), found in
    one pass without recursion."""
    stack = [(obj, 1)] if isinstance(obj, dict | list) else []
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        for child in value.values() if isinstance(value, dict) else value:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


def schema_errors(obj: Any, *, strict: bool = True) -> dict[str, list[str]]:
    """The problems the schema finds in the (unwrapped) manifest ``obj``, by JSON path. Without
    ``strict``, fields outside the schema are let through (an inline manifest: the request's own)."""
    if _deeper_than(obj, MAX_DEPTH):
        return {"$": [f"the manifest nests deeper than {MAX_DEPTH} levels"]}
    errors: dict[str, list[str]] = {}
    for seen, error in enumerate(_VALIDATOR.iter_errors(obj)):
        if seen == MAX_ERRORS:
            break
        if not strict and error.validator == "additionalProperties" and error.validator_value is False:
            continue
        where, message = _reported(error)
        if message not in errors.setdefault(where, []):
            errors[where].append(message)
        if error.validator == "maxItems":
            break
    return errors


# -- what the schema cannot say ---------------------------------------------------------------------
def _names(obj: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Every (path, text) of a valid manifest that is shown as a name."""
    for key in ("product", "version"):
        if isinstance(obj.get(key), str):
            yield key, obj[key]
    for owner in obj.get("owners", []):
        yield "owners", owner
    for i, prof in enumerate(obj.get("profiles", [])):
        yield f"profiles[{i}].name", prof["name"]
        for j, entry in enumerate(prof.get("tools", [])):
            yield f"profiles[{i}].tools[{j}]", _tool_name(entry)


def _tool_name(entry: str | dict[str, Any]) -> str:
    return entry if isinstance(entry, str) else entry["id"] if "id" in entry else entry["name"]


def parse(obj: Any, *, strict: bool = False) -> Manifest:
    """The manifest ``obj`` (or its ``cue export`` wrapper), valid by the schema (``strict``: no
    field outside it either), or ``ManifestInvalid``."""
    obj = unwrap(obj)
    errors = schema_errors(obj, strict=strict)
    if not errors:
        for where, text in _names(obj):
            if visible(text) != text and HIDDEN not in errors.setdefault(where, []):
                errors[where].append(HIDDEN)
    if errors:
        raise ManifestInvalid(errors)
    profiles: dict[str, ManifestProfile] = {}
    for prof in obj.get("profiles", []):
        tools: list[str] = []
        config: dict[str, Any] = {}
        for entry in prof.get("tools", []):
            tool = _tool_name(entry).strip().lower()
            tools.append(tool)
            if isinstance(entry, dict) and entry.get("config") is not None:
                config[tool] = entry["config"]
        name = prof["name"].strip()
        profiles[name.lower()] = ManifestProfile(name, tuple(tools), config, dict(prof.get("thresholds", {})),
                                                 dict(prof.get("new_findings", {})))
    ceiling = obj.get("bundle", {}).get("runtimeCeilingMinutes")
    return Manifest(obj, _str_or_none(obj.get("product")), _str_or_none(obj.get("version")),
                    tuple(obj.get("owners", [])), profiles, ceiling)


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def profile_known(name: str, manifest: Manifest | None) -> bool:
    return builtin(name) is not None or (manifest is not None and manifest.profile(name) is not None)
