"""The typed records of the contract: a scan (``ScanRecord``) and its upload (``UploadRecord``).

A scan lives in Redis as one hash (``tasks.keyspace.scan``) whose fields each hold one JSON value,
so the worker and the API can update different fields without rewriting the whole record. This
module is the one place that maps a record to and from those fields (``to_fields`` /
``from_fields``) and that knows every field's name: a write naming a field the record does not have
is refused (``fields_of``), so a typo cannot create a stray field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from tasks.clock import utcnow_iso
from tasks.states import ScanStatus, UploadStatus

JSON = Any  # a value as json.loads returns it

# One encoder for every field: json.dumps with options builds a new one per call.
_dumps = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode


def encode(value: object) -> str:
    return _dumps(value)


# Fields written only on some paths (a worker's, a sweeper's, an upload's): absent from a record
# until they are set, so answers show them only then.
_SOMETIMES = {"omit_if_none": True}


@dataclass
class UploadRecord:
    """The upload of a scan: fields of the scan's hash, moved together by ``tasks.uploads``."""

    upload_status: UploadStatus | None = None
    upload_request_id: str | None = None
    upload_request: dict[str, JSON] | None = None
    upload_permission_id: str | None = None
    upload_permit: dict[str, JSON] | None = None
    verification_proof: dict[str, JSON] | None = None
    remote_artifacts: dict[str, JSON] | None = None
    upload_reason: str | None = None

    @classmethod
    def from_values(cls, values: Mapping[str, JSON]) -> UploadRecord:
        known = {f.name for f in fields(cls)}
        record = cls(**{k: v for k, v in values.items() if k in known})
        if record.upload_status is not None:
            record.upload_status = UploadStatus(record.upload_status)
        return record

    @property
    def in_flight(self) -> bool:
        return self.upload_status in (UploadStatus.PENDING, UploadStatus.PERMITTED)

    def outcome(self) -> dict[str, JSON]:
        """What the upload's outcome file reports: every field but the permit (kept beside the objects)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "upload_permit"}


UPLOAD_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(UploadRecord))


@dataclass
class ScanRecord:
    """One scan, as the store holds it and the status endpoint reports it (less its internal fields)."""

    test_id: str
    workspace_id: str
    component_id: str
    assessment_id: str
    profile: str
    status: ScanStatus = ScanStatus.QUEUED
    created_at: str = field(default_factory=utcnow_iso)
    # what to scan: a source kind (tasks.sources) and its request fields. The contract's kinds keep
    # theirs in fields of their own (SOURCE_COLUMNS); any other kind's are kept in source_fields.
    source_type: str | None = None
    git_url: str | None = None
    branch: str | None = None
    commit: str | None = None
    directory_path: str | None = None
    archive_path: str | None = None
    source_fields: dict[str, JSON] | None = field(default=None, metadata=_SOMETIMES)
    # how
    manifest: dict[str, JSON] | None = None
    manifest_path: str | None = None
    manifest_uri: str | None = None
    manifest_signature_uri: str | None = None
    manifest_signature: str | None = None
    manifest_digest: str | None = None
    manifest_metadata: dict[str, JSON] | None = None
    requested_by: str | None = None
    # what to compare with (docs/findings.md): a test_id, "auto" (the latest SUCCEEDED scan of the
    # component on its baseline branch) or "none"; None on a record made before baselines: "auto".
    baseline: str | None = None
    # the component's baseline branch; None: the repository's default branch (a git source)
    baseline_branch: str | None = field(default=None, metadata=_SOMETIMES)
    stream_url: str | None = None
    status_url: str | None = None
    # progress and outcome
    started_at: str | None = None
    completed_at: str | None = None
    resolved_commit: str | None = None
    source_hash: str | None = field(default=None, metadata=_SOMETIMES)
    phases: list[dict[str, JSON]] = field(default_factory=list)
    summary: dict[str, JSON] | None = None
    policy: dict[str, JSON] | None = None
    artifacts: dict[str, JSON] = field(default_factory=dict)
    warnings: list[dict[str, JSON]] = field(default_factory=list)
    errors: list[dict[str, JSON]] = field(default_factory=list)
    # the upload (see UploadRecord)
    upload_status: UploadStatus | None = None
    upload_request_id: str | None = field(default=None, metadata=_SOMETIMES)
    upload_request: dict[str, JSON] | None = field(default=None, metadata=_SOMETIMES)
    upload_permission_id: str | None = None
    upload_permit: dict[str, JSON] | None = field(default=None, metadata=_SOMETIMES)
    verification_proof: dict[str, JSON] | None = None
    remote_artifacts: dict[str, JSON] | None = None
    upload_reason: str | None = field(default=None, metadata=_SOMETIMES)
    # the worker's bookkeeping
    attempt: int = 0
    cancel_requested: bool = False
    worker: str | None = field(default=None, metadata=_SOMETIMES)
    worker_pid: int | None = field(default=None, metadata=_SOMETIMES)
    heartbeat_at: str | None = field(default=None, metadata=_SOMETIMES)
    requeues: int | None = field(default=None, metadata=_SOMETIMES)
    requeued_at: str | None = field(default=None, metadata=_SOMETIMES)

    # -- Redis -----------------------------------------------------------------------------------
    def to_fields(self) -> dict[str, str]:
        """The hash fields that store this record (one JSON value each)."""
        return {name: "null" if value is None else encode(value) for name, value in self.to_dict().items()}

    @classmethod
    def from_fields(cls, raw: Mapping[str, str]) -> ScanRecord:
        """A record from its hash fields; fields this version does not know are ignored."""
        return cls.from_values({k: json.loads(v) for k, v in raw.items() if k in FIELD_NAMES})

    @classmethod
    def from_values(cls, given: Mapping[str, JSON]) -> ScanRecord:
        """A record from JSON values (a decoded hash, or a status answer); unknown names are ignored."""
        values = {k: v for k, v in given.items() if k in FIELD_NAMES}
        for name in _REQUIRED:
            values.setdefault(name, "")
        record = cls(**values)
        record.status = ScanStatus(record.status)
        if record.upload_status is not None:
            record.upload_status = UploadStatus(record.upload_status)
        return record

    # -- views -----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, JSON]:
        """Every field as a JSON-ready value (fields only set on some paths only once set)."""
        out: dict[str, JSON] = {}
        for name, omit_if_none in _SHAPE:
            value = getattr(self, name)
            if value is None and omit_if_none:
                continue
            out[name] = value
        return out

    def source_value(self, name: str) -> JSON:
        """The value of the source field ``name``, wherever the record keeps it."""
        if name in SOURCE_COLUMNS:
            return getattr(self, name)
        return (self.source_fields or {}).get(name)

    @property
    def upload(self) -> UploadRecord:
        return UploadRecord(**{name: getattr(self, name) for name in UPLOAD_FIELDS})

    @property
    def finished(self) -> bool:
        return self.status.terminal


FIELD_NAMES: frozenset[str] = frozenset(f.name for f in fields(ScanRecord))
# Each field's name and whether a record leaves it out until it is set, in declaration order.
_SHAPE: tuple[tuple[str, bool], ...] = tuple((f.name, bool(f.metadata.get("omit_if_none")))
                                             for f in fields(ScanRecord))
# The source fields that are fields of the record (the contract's kinds': git, directory, archive).
SOURCE_COLUMNS: frozenset[str] = frozenset({"git_url", "branch", "commit", "directory_path", "archive_path"})
_REQUIRED = tuple(f.name for f in fields(ScanRecord) if f.default is MISSING and f.default_factory is MISSING)


def source_record_fields(source_type: str, values: Mapping[str, JSON]) -> dict[str, JSON]:
    """The record fields that keep a scan's source: its kind, a field of its own for each of
    ``SOURCE_COLUMNS``, and every other source field in ``source_fields``."""
    out: dict[str, JSON] = {"source_type": source_type}
    extra = {name: value for name, value in values.items() if name not in SOURCE_COLUMNS}
    out.update({name: value for name, value in values.items() if name in SOURCE_COLUMNS})
    if extra:
        out["source_fields"] = extra
    return out


def fields_of(values: Mapping[str, object]) -> dict[str, str]:
    """Hash fields for a partial write; a name that is not a field of ``ScanRecord`` is a bug."""
    unknown = set(values) - FIELD_NAMES
    if unknown:
        raise KeyError(f"not fields of a scan record: {', '.join(sorted(unknown))}")
    return {name: encode(value) for name, value in values.items()}


def decode_fields(names: tuple[str, ...], values: list[str | None]) -> dict[str, JSON]:
    """Named hash fields as read back (None for a field that is not set)."""
    return {n: (json.loads(v) if v is not None else None) for n, v in zip(names, values, strict=True)}
