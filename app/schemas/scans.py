"""Marshmallow schemas for the scan endpoints, exactly as CONTRACT.md pins them."""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import SplitResult, urlsplit

from flask import current_app, has_app_context
from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate, validates_schema

from app.errors import APIError
from app.schemas.patterns import Whole, shown_as_is
from tasks import manifest as manifests
from tasks.netpolicy import HostNotAllowed, check_local_source
from tasks.profiles import DEFAULT_PROFILE
from tasks.store import STATUSES

SLUG = r"^[a-z0-9][a-z0-9-]{0,62}$"
ASSESSMENT = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
COMMIT = r"^[0-9a-fA-F]{7,40}$"
GIT_SCHEMES = ("https", "http", "ssh", "git", "file")
MANIFEST_SCHEMES = ("s3", "oci", "https", "file")

# git check-ref-format rules, plus: no leading '-' (option injection), and no character that is not
# shown as itself (C1 controls, bidirectional and other format characters: `shown_as_is`).
_BAD_REF = re.compile(r"(^[-/.])|(\.\.)|(@\{)|([\x00-\x20\x7f~^:?*\[\\])|(//)|(/$)|(\.lock$)|(\.$)|(/\.)")


def check_branch(value: str) -> None:
    if not value or len(value) > 255 or _BAD_REF.search(value) or value == "@":
        raise ValidationError("not a valid branch name")
    shown_as_is(value)


# A DNS name or an IPv4 literal (IPv6 literals are checked with ipaddress); never a leading '-'.
_HOSTNAME = re.compile(r"^(?=.{1,253}\Z)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_-]{1,63})*\.?\Z")
_SSH_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z")


def _check_netloc(parts: SplitResult, raw: str) -> None:
    netloc = parts.netloc
    if not netloc.isascii() or "%" in netloc or "\\" in raw:
        raise ValidationError("the host must be plain ASCII without escapes or backslashes")
    host = parts.hostname or ""
    if host.startswith("-"):
        raise ValidationError("the host must not begin with '-'")
    if netloc.rsplit("@", 1)[-1].startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise ValidationError("not a valid IPv6 address") from exc
    elif not _HOSTNAME.match(host):
        raise ValidationError("not a valid host name")
    try:
        parts.port  # noqa: B018 - parsing raises on a port out of range
    except ValueError as exc:
        raise ValidationError("not a valid port") from exc


def _split(value: str) -> SplitResult:
    try:
        return urlsplit(value)
    except ValueError as exc:  # e.g. an unbalanced '[' in the host
        raise ValidationError("not a valid URL") from exc


def check_local_git_url(value: str) -> None:
    """With local sources on, a local repository must lie inside ``ALLOWED_SOURCE_ROOTS`` once every
    link on its way is followed: 422 ``path_not_allowed`` otherwise. With them off, the service
    answers ``git_url_not_allowed``. Only the serving app's settings can judge it."""
    if not has_app_context():
        raise ValidationError("a local repository can only be checked by the service")
    settings = current_app.extensions["certus"].settings
    if not settings.allow_local_sources:
        return
    try:
        check_local_source(value, settings.allow_local_sources, settings.allowed_source_roots)
    except HostNotAllowed as exc:
        raise APIError(422, exc.code, str(exc), fields={"git_url": [str(exc)]}) from exc


def check_git_url(value: str) -> None:
    if value.startswith("-"):
        raise ValidationError("must not begin with '-'")
    if "::" in value.split("/", 1)[0] or value.lower().startswith("ext::"):
        raise ValidationError("transport helpers (such as ext::) are not allowed")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in value) or "\\" in value:
        raise ValidationError("must not contain spaces, backslashes or control characters")
    shown_as_is(value)
    parts = _split(value)
    if not parts.scheme and value.startswith("/"):
        if any(part == ".." for part in value.split("/")):
            raise ValidationError("a local path must not contain '..'")
        check_local_git_url(value)
        return
    if parts.scheme not in GIT_SCHEMES:
        raise ValidationError(f"scheme must be one of {', '.join(GIT_SCHEMES)}")
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise ValidationError("must not carry a query or fragment")
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or any(p == ".." for p in parts.path.split("/")):
            raise ValidationError("a file URL must name a local absolute path without '..'")
        check_local_git_url(value)
        return
    if not parts.hostname:
        raise ValidationError("must name a host")
    _check_netloc(parts, value)
    if parts.password is not None:
        raise ValidationError("credentials belong in the workspace's git secret, not in the URL")
    if parts.username is not None:
        # https://trusted.example@10.0.0.1/ smuggles a host; ssh needs a user name, nothing more.
        if parts.scheme != "ssh" or not _SSH_USER.match(parts.username):
            raise ValidationError("credentials belong in the workspace's git secret, not in the URL")


def check_manifest_uri(value: str) -> None:
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in value) or value.startswith("-"):
        raise ValidationError("must not contain spaces or control characters, nor begin with '-'")
    shown_as_is(value)
    parts = _split(value)
    if parts.scheme not in MANIFEST_SCHEMES:
        raise ValidationError(f"scheme must be one of {', '.join(MANIFEST_SCHEMES)}")
    if parts.scheme != "file" and not parts.netloc:
        raise ValidationError("must name a bucket, registry or host")
    if "@" in parts.netloc:
        raise ValidationError("must not carry credentials")
    if parts.scheme == "https":
        _check_netloc(parts, value)
    if parts.scheme == "file" and (parts.netloc not in ("", "localhost")
                                   or any(p == ".." for p in parts.path.split("/"))):
        raise ValidationError("a file URI must name a local absolute path without '..'")


def check_relative_path(value: str) -> None:
    if not value or value.startswith(("/", "\\", "-")) or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValidationError("must be a relative path inside the source")
    shown_as_is(value)
    if any(part == ".." for part in re.split(r"[\\/]", value)):
        raise ValidationError("must not leave the source tree")


class ScanRequestSchema(Schema):
    class Meta:
        unknown = RAISE

    workspace_id = fields.String(required=True, validate=Whole(SLUG))
    component_id = fields.String(required=True, validate=Whole(SLUG))
    assessment_id = fields.String(required=True, validate=Whole(ASSESSMENT))
    source_type = fields.String(load_default="git", validate=validate.OneOf(["git", "directory", "archive"]))
    git_url = fields.String(validate=[validate.Length(max=2048), check_git_url])
    branch = fields.String(validate=check_branch)
    commit = fields.String(validate=Whole(COMMIT))
    # Server paths, judged by the service against ALLOWED_SOURCE_ROOTS (422 path_not_allowed).
    directory_path = fields.String(validate=validate.Length(min=1, max=4096))
    archive_path = fields.String(validate=validate.Length(min=1, max=4096))
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

    @validates_schema(skip_on_field_errors=False)
    def _check_sources(self, data: dict[str, Any], **_: Any) -> None:
        errors: dict[str, list[str]] = {}
        source_type = data.get("source_type", "git")
        if source_type not in ("git", "directory", "archive"):
            return
        required = {"git": "git_url", "directory": "directory_path", "archive": "archive_path"}[source_type]
        if not data.get(required):
            errors[required] = [f"required when source_type is {source_type}"]
        for other in ("git_url", "directory_path", "archive_path"):
            if other != required and other in data:
                errors.setdefault(other, []).append(f"not allowed when source_type is {source_type}")
        if source_type != "git":
            for name in ("branch", "commit"):
                if name in data:
                    errors.setdefault(name, []).append("only for git sources")
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
        if "commit" in data:
            data["commit"] = data["commit"].lower()
        return data


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
