"""The source kinds the service offers, by name (``source_type``).

The contract's three are registered here; a plugin (the ``PLUGINS`` setting, ``tasks.plugins``)
registers more with ``register``. Everything that depends on the kinds asks this module: the API's
request schema (the ``source_type`` choices, each kind's fields and which are required), the
service's check at submit, the scan record (``tasks.records.source_record_fields``) and the
worker's fetch (``workers.sources.fetch``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from tasks.records import FIELD_NAMES, SOURCE_COLUMNS, source_record_fields
from tasks.sources import archive, directory, git
from tasks.sources.base import FIELD_NAME, KIND_NAME, CheckContext, SourceField, SourceKind

DEFAULT = "git"  # a request without source_type (the contract's default)
# Names a kind's field may not take: the scan's other fields, and the keys of scan.json's source.
RESERVED = (FIELD_NAMES - SOURCE_COLUMNS) | {"hash", "detail", "commit_requested"}

_lock = threading.Lock()
_kinds: dict[str, SourceKind] = {}
_generation = 0


def register(kind: SourceKind) -> SourceKind:
    """Offer ``kind``. Refused (ValueError) when its name is taken, or a field name is reserved or
    is another kind's field with a different rule."""
    global _generation
    with _lock:
        if not KIND_NAME.match(kind.name):
            raise ValueError(f"source kind name {kind.name!r} must match {KIND_NAME.pattern}")
        if kind.name in _kinds:
            raise ValueError(f"source kind {kind.name!r} is already registered")
        if ":" not in kind.fetcher:
            raise ValueError(f"source kind {kind.name!r}: fetcher must be 'package.module:function'")
        known = _fields(_kinds.values())
        for spec in kind.fields:
            if not FIELD_NAME.match(spec.name) or spec.name in RESERVED:
                raise ValueError(f"source kind {kind.name!r}: field name {spec.name!r} is not allowed")
            if spec.name in known and known[spec.name] != spec:
                raise ValueError(f"source kind {kind.name!r}: field {spec.name!r} is another kind's, "
                                 f"with another rule")
        _kinds[kind.name] = kind
        _generation += 1
    return kind


def unregister(name: str) -> None:
    """Stop offering a kind (a test's own kind, once the test is done)."""
    global _generation
    with _lock:
        if _kinds.pop(name, None) is not None:
            _generation += 1


def get(name: str | None) -> SourceKind | None:
    return _kinds.get(name or "")


def kinds() -> tuple[SourceKind, ...]:
    """Every kind offered, the contract's first, then in the order they were registered."""
    return tuple(_kinds.values())


def names() -> tuple[str, ...]:
    return tuple(_kinds)


def generation() -> int:
    """A number that changes whenever a kind is registered or removed (for what is built from them)."""
    return _generation


def source_fields() -> dict[str, SourceField]:
    """Every kind's request fields by name (a field two kinds share counts once)."""
    return _fields(kinds())


def owners(field_name: str) -> tuple[SourceKind, ...]:
    """The kinds that take ``field_name``."""
    return tuple(k for k in kinds() if any(f.name == field_name for f in k.fields))


def values_of(kind: SourceKind, data: Mapping[str, Any]) -> dict[str, Any]:
    """The kind's fields a request gives."""
    return {f.name: data[f.name] for f in kind.fields if f.name in data}


def check(data: Mapping[str, Any], ctx: CheckContext) -> None:
    """The check at submit of a request the schema accepted (so its kind is one of ours): raises
    ``SourceRefused``."""
    kind = get(data.get("source_type") or DEFAULT)
    if kind is None:
        raise ValueError(f"source kind {data.get('source_type')!r} is not registered")
    kind.check(values_of(kind, data), ctx)


def record_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """The scan record's fields that keep a request's source (``tasks.records.source_record_fields``)."""
    source_type = str(data.get("source_type") or DEFAULT)
    kind = get(source_type)
    return source_record_fields(source_type, values_of(kind, data) if kind is not None else {})


def _fields(of: Iterable[SourceKind]) -> dict[str, SourceField]:
    out: dict[str, SourceField] = {}
    for kind in of:
        for spec in kind.fields:
            out.setdefault(spec.name, spec)
    return out


# The contract's kinds. A new kind of the service: its module in tasks/sources/, its fetcher in
# workers/sources/, and one line here.
for _builtin in (git.KIND, directory.KIND, archive.KIND):
    register(_builtin)
