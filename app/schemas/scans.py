"""Marshmallow schemas for the scan endpoints, exactly as CONTRACT.md pins them."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flask import current_app, has_app_context
from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate, validates_schema
from marshmallow.fields import Field
from marshmallow.types import StrSequenceOrSet, UnknownOption

from app.errors import APIError
from app.schemas.patterns import Whole, shown_as_is
from tasks import manifest as manifests
from tasks import sources
from tasks.errors import CodedError
from tasks.profiles import DEFAULT_PROFILE
from tasks.sources.base import FieldCheck
from tasks.sources.git import check_branch
from tasks.sources.urls import check_netloc, split_url
from tasks.store import STATUSES

SLUG = r"^[a-z0-9][a-z0-9-]{0,62}$"
ASSESSMENT = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
MANIFEST_SCHEMES = ("s3", "oci", "https", "file")
BASELINE = r"^(auto|none|test_[0-9a-f]{12})$"


def check_baseline_branch(value: str) -> None:
    try:
        check_branch(value)
    except sources.FieldInvalid as exc:
        raise ValidationError(str(exc)) from exc


def check_manifest_uri(value: str) -> None:
    try:
        _check_manifest_uri(value)
    except sources.FieldInvalid as exc:
        raise ValidationError(str(exc)) from exc


def _check_manifest_uri(value: str) -> None:
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in value) or value.startswith("-"):
        raise ValidationError("must not contain spaces or control characters, nor begin with '-'")
    shown_as_is(value)
    parts = split_url(value)
    if parts.scheme not in MANIFEST_SCHEMES:
        raise ValidationError(f"scheme must be one of {', '.join(MANIFEST_SCHEMES)}")
    if parts.scheme != "file" and not parts.netloc:
        raise ValidationError("must name a bucket, registry or host")
    if "@" in parts.netloc:
        raise ValidationError("must not carry credentials")
    if parts.scheme == "https":
        check_netloc(parts, value)
    if parts.scheme == "file" and (parts.netloc not in ("", "localhost")
                                   or any(p == ".." for p in parts.path.split("/"))):
        raise ValidationError("a file URI must name a local absolute path without '..'")


def check_relative_path(value: str) -> None:
    if not value or value.startswith(("/", "\\", "-")) or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValidationError("must be a relative path inside the source")
    shown_as_is(value)
    if any(part == ".." for part in re.split(r"[\\/]", value)):
        raise ValidationError("must not leave the source tree")


def _field_check(spec: sources.SourceField, check: FieldCheck) -> Callable[[str], None]:
    """A source field's own check as a marshmallow validator, given the serving app's settings."""

    def run(value: str) -> None:
        settings = current_app.extensions["certus"].settings if has_app_context() else None
        try:
            check(value, settings)
        except sources.FieldInvalid as exc:
            raise ValidationError(str(exc)) from exc
        except CodedError as exc:
            raise APIError(422, exc.code, exc.message, fields={spec.name: [exc.message]}) from exc

    return run


def _source_field(spec: sources.SourceField) -> fields.String:
    validators: list[Callable[[str], Any]] = []
    if spec.min_length is not None or spec.max_length is not None:
        validators.append(validate.Length(min=spec.min_length, max=spec.max_length))
    if spec.pattern is not None:
        validators.append(Whole(spec.pattern))
    if spec.check is not None:
        validators.append(_field_check(spec, spec.check))
    return fields.String(validate=validators)


def _with_sources(declared: Mapping[str, Field[Any]]) -> dict[str, Field[Any]]:
    """The request's fields with ``source_type`` choosing among the registered kinds, and every
    kind's fields after it."""
    out: dict[str, Field[Any]] = {}
    for name, field in declared.items():
        out[name] = field
        if name != "source_type":
            continue
        out[name] = fields.String(load_default=sources.DEFAULT, validate=validate.OneOf(sources.names()))
        for spec in sources.source_fields().values():
            if spec.name in declared:
                raise ValueError(f"source field {spec.name!r} is already a field of the scan request")
            out[spec.name] = _source_field(spec)
    return out


class ScanRequestSchema(Schema):
    """The body of ``POST /v1/security-scans``. The choices of ``source_type`` and the source fields
    after it are the registered source kinds' (``tasks.sources``): taken when a schema is made, and
    again at the next load once a kind is registered later (a plugin, at the app's start)."""

    class Meta:
        unknown = RAISE

    workspace_id = fields.String(required=True, validate=Whole(SLUG))
    component_id = fields.String(required=True, validate=Whole(SLUG))
    assessment_id = fields.String(required=True, validate=Whole(ASSESSMENT))
    source_type = fields.String(load_default=sources.DEFAULT)  # its choices: _with_sources
    profile = fields.String(load_default=DEFAULT_PROFILE,
                            validate=Whole(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"))
    manifest = fields.Dict(keys=fields.String())
    manifest_path = fields.String(validate=[validate.Length(max=1024), check_relative_path])
    manifest_uri = fields.String(validate=[validate.Length(max=2048), check_manifest_uri])
    manifest_signature_uri = fields.String(validate=[validate.Length(max=2048), check_manifest_uri])
    # The signature of an inline manifest: base64, as `cosign sign-blob --key` prints it, over the
    # manifest's canonical text (`json.dumps(manifest, sort_keys=True)`, the text its digest is of).
    manifest_signature = fields.String(validate=[validate.Length(min=16, max=4096),
                                                 Whole(r"^[A-Za-z0-9+/]+={0,2}\s*$")])
    requested_by = fields.String(validate=[validate.Length(max=256), shown_as_is])
    # What the scan's findings are compared with (docs/findings.md): "auto", the latest SUCCEEDED
    # scan of the component on its baseline branch; "none"; or the test_id of a SUCCEEDED scan of it.
    baseline = fields.String(validate=Whole(BASELINE),
                             metadata={"default": "auto",
                                       "description": 'what the findings are compared with: "auto", "none" or a '
                                                      "test_id of a SUCCEEDED scan of the same component"})
    # The component's baseline branch; by default the repository's default branch.
    baseline_branch = fields.String(validate=check_baseline_branch,
                                    metadata={"description": "the component's baseline branch (default: the "
                                                             "repository's default branch)"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._generation = sources.generation()
        self._declared_fields = _with_sources(type(self)._declared_fields)
        super().__init__(*args, **kwargs)
        self._options = (args, kwargs)
        self._successor: ScanRequestSchema | None = None
        self._successor_lock = threading.Lock()

    def _current(self) -> ScanRequestSchema:
        """This schema, or one made since the source kinds changed."""
        if self._generation == sources.generation():
            return self
        with self._successor_lock:
            if self._successor is None or self._successor._generation != sources.generation():
                args, kwargs = self._options
                self._successor = type(self)(*args, **kwargs)
            return self._successor

    def load(self, data: Mapping[str, Any] | Sequence[Mapping[str, Any]], *, many: bool | None = None,
             partial: bool | StrSequenceOrSet | None = None, unknown: UnknownOption | None = None) -> Any:
        current = self._current()
        if current is not self:
            return current.load(data, many=many, partial=partial, unknown=unknown)
        return super().load(data, many=many, partial=partial, unknown=unknown)

    @validates_schema(skip_on_field_errors=False)
    def _check_sources(self, data: dict[str, Any], **_: Any) -> None:
        errors: dict[str, list[str]] = {}
        kind = sources.get(data.get("source_type", sources.DEFAULT))
        if kind is None:
            return
        for spec in kind.fields:
            if spec.required and not data.get(spec.name):
                errors[spec.name] = [f"required when source_type is {kind.name}"]
        own = {spec.name for spec in kind.fields}
        others = [spec for spec in sources.source_fields().values() if spec.name not in own and spec.name in data]
        # Another kind's main field first ("not allowed"), then its options ("only for ... sources").
        for spec in sorted(others, key=lambda spec: not _required_somewhere(spec.name)):
            if _required_somewhere(spec.name):
                errors.setdefault(spec.name, []).append(f"not allowed when source_type is {kind.name}")
            else:
                takers = " and ".join(k.name for k in sources.owners(spec.name))
                errors.setdefault(spec.name, []).append(f"only for {takers} sources")
        given = [n for n in ("manifest", "manifest_path", "manifest_uri") if n in data]
        if len(given) > 1:
            for name in given:
                errors.setdefault(name, []).append("give at most one of manifest, manifest_path, manifest_uri")
        if "manifest_signature_uri" in data and "manifest_uri" not in data:
            errors.setdefault("manifest_signature_uri", []).append("only together with manifest_uri")
        if "manifest_signature" in data and "manifest" not in data:
            errors.setdefault("manifest_signature", []).append("only together with an inline manifest")
        parsed = None
        if "manifest" in data and len(given) == 1:
            try:
                parsed = manifests.parse(data["manifest"])
            except manifests.ManifestInvalid as exc:
                errors["manifest"] = [f"{path}: {msg}" for path, msgs in exc.errors.items() for msg in msgs]
        profile = data.get("profile", DEFAULT_PROFILE)
        if "manifest" not in errors and not manifests.profile_known(profile, parsed):
            # A profile defined in a manifest fetched later (path or URI) can only be checked then.
            if not any(n in data for n in ("manifest_path", "manifest_uri")):
                errors.setdefault("profile", []).append(
                    "unknown profile: name a built-in profile or one the manifest defines")
        if errors:
            raise ValidationError(errors)

    @post_load
    def _normalise(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        for spec in sources.source_fields().values():
            if spec.normalise is not None and spec.name in data:
                data[spec.name] = spec.normalise(data[spec.name])
        return data


def _required_somewhere(name: str) -> bool:
    return any(spec.name == name and spec.required for kind in sources.owners(name) for spec in kind.fields)


class ScanListQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    workspace_id = fields.String(validate=Whole(SLUG))
    component_id = fields.String(validate=Whole(SLUG))
    status = fields.String(validate=validate.OneOf(STATUSES))
    cursor = fields.String(validate=validate.Length(max=200))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class EventsQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    after = fields.String(load_default="0-0", validate=validate.Length(max=48))
    limit = fields.Integer(load_default=500, validate=validate.Range(min=1, max=5000))
