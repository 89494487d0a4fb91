"""Resolve the manifest a scan runs with, and the profile it selects.

Order matters: the manifest is fetched, its signature checked (fail closed), and only then parsed.
A fetched document becomes the bundle's ``manifest.json`` only once it has been validated as a
manifest: the service reads it with its own authority (S3 credentials, files, registries), so a
document that is anything else is refused without its content reaching the bundle, the scan's
errors or its events.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tasks import manifest as manifests
from tasks.profiles import builtin
from tasks.records import ScanRecord
from tasks.settings import Settings
from workers.pipeline.manifest_sources import Fetched, ManifestSourceError, fetch_uri, from_source_tree
from workers.signing import signing_keys


@dataclass
class ResolvedManifest:
    text: str
    digest: str
    parsed: manifests.Manifest | None
    profile_requested: str
    profile_resolved: str
    tools: list[str]
    tool_config: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, int] = field(default_factory=dict)
    new_findings: dict[str, int] = field(default_factory=dict)
    ceiling_minutes: int | None = None
    source: str = "builtin"
    unsupported: list[str] = field(default_factory=list)
    signature_verified: bool = False
    data: bytes | None = None  # the manifest bytes exactly as used (None: the built-in profile alone)
    signature: bytes | None = None  # the signature that came with it, as received
    location: str | None = None
    signature_location: str | None = None
    signature_key_sha256: str | None = None
    fallback: bool = False

    @property
    def info(self) -> dict[str, Any]:
        return {
            "product": self.parsed.product if self.parsed else None,
            "version": self.parsed.version if self.parsed else None,
            "owners": list(self.parsed.owners) if self.parsed else [],
            "source": self.source,
            "location": self.location,
            "profile_requested": self.profile_requested,
            "profile_resolved": self.profile_resolved,
            "profile_fallback_to_builtin": self.fallback,
            "tools_selected": self.tools,
            "unsupported_manifest_tools": self.unsupported,
            "policy_thresholds": self.thresholds,
            "policy_new_findings": self.new_findings,
            "runtime_ceiling_minutes": self.ceiling_minutes,
            "manifest_digest": self.digest,
            "signature": {
                "present": self.signature is not None,
                "verified": self.signature_verified,
                "location": self.signature_location,
                "key_sha256": self.signature_key_sha256,
            },
        }


class ManifestSignatureError(ManifestSourceError):
    """The manifest's signature is missing (when required) or does not verify."""


# The fields a manifest may have (docs/manifests.md); a tool's ``config`` is the tool's own business.
_FIELDS = {"product", "version", "owners", "profiles", "bundle"}
_PROFILE_FIELDS = {"name", "tools", "thresholds", "new_findings"}
_TOOL_FIELDS = {"id", "name", "config"}
_BUNDLE_FIELDS = {"runtimeCeilingMinutes"}
MAX_SIGNATURE_BYTES = 1024
# Error paths that name only the schema, never a key taken from the document.
_SCHEMA_PATH = re.compile(r"^(\$|product|version|owners|bundle(\.runtimeCeilingMinutes)?|profiles"
                          r"(\[\d+\](\.name|\.tools(\[\d+\](\.config)?)?|\.(thresholds|new_findings)"
                          r"(\.(critical|high|medium|low|info))?)?)?)\Z")


class _KeyTwice(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _KeyTwice()
    return obj


def _refuse_constant(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


def _schema_path(path: str) -> str:
    """``path``, cut back to the part that names the schema only (a threshold's unknown severity is
    a key of the document, so it is not repeated)."""
    while not _SCHEMA_PATH.match(path):
        path = path.rsplit(".", 1)[0] if "." in path else "$"
    return path


def _unknown_fields(obj: dict[str, Any]) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    outside = "has fields outside the manifest schema"
    if set(obj) - _FIELDS:
        problems["$"] = [f"not a scan manifest: it {outside}"]
    profiles = obj.get("profiles")
    for i, prof in enumerate(profiles if isinstance(profiles, list) else []):
        if isinstance(prof, dict) and set(prof) - _PROFILE_FIELDS:
            problems[f"profiles[{i}]"] = [outside]
        tools = prof.get("tools") if isinstance(prof, dict) else None
        for j, tool in enumerate(tools if isinstance(tools, list) else []):
            if isinstance(tool, dict) and set(tool) - _TOOL_FIELDS:
                problems[f"profiles[{i}].tools[{j}]"] = [outside]
    bundle = obj.get("bundle")
    if isinstance(bundle, dict) and set(bundle) - _BUNDLE_FIELDS:
        problems["bundle"] = [outside]
    return problems


def validated_document(data: bytes) -> tuple[str, manifests.Manifest]:
    """``data`` as text and parsed, when it is a manifest: UTF-8 JSON, no key twice, only the
    schema's fields, and valid by ``tasks.manifest.parse``. Otherwise ``ManifestInvalid`` whose
    messages name schema paths only: nothing of the document is repeated."""
    try:
        text = data.decode("utf-8")
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant)
    except _KeyTwice as exc:
        raise manifests.ManifestInvalid({"$": ["not a scan manifest: an object has the same key twice"]}) from exc
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        problem = f"the manifest is not valid UTF-8 JSON ({exc.__class__.__name__})"
        raise manifests.ManifestInvalid({"$": [problem]}) from exc
    obj = manifests.unwrap(obj)
    if not isinstance(obj, dict):
        raise manifests.ManifestInvalid({"$": ["not a scan manifest: a manifest is a JSON object"]})
    unknown = _unknown_fields(obj)
    if unknown:
        raise manifests.ManifestInvalid(unknown)
    try:
        return text, manifests.parse(obj)
    except manifests.ManifestInvalid as exc:
        errors: dict[str, list[str]] = {}
        for path, problems in exc.errors.items():
            errors.setdefault(_schema_path(path), []).extend(problems)
        raise manifests.ManifestInvalid(errors) from None


def check_signature_shape(signature: bytes) -> None:
    """A signature is stored in the bundle as received, so it must be one: base64 of a DER ECDSA
    signature, as ``cosign sign-blob`` writes it, and small."""
    try:
        if len(signature) > MAX_SIGNATURE_BYTES:
            raise ValueError("too long for a signature")
        decode_dss_signature(signing_keys.decode_signature(signature))
    except (signing_keys.SigningKeyError, ValueError) as exc:
        raise ManifestSignatureError("manifest_signature_invalid",
                                     "the manifest signature is not a base64 ECDSA signature") from exc


def resolve_manifest(record: ScanRecord, settings: Settings, source_dir: Path | None = None,
                     known_tools: Collection[str] | None = None) -> ResolvedManifest:
    requested = record.profile
    fetched = _fetch(record, settings, source_dir)
    if fetched is None:
        resolved = select_profile("", None, requested, "builtin", known_tools)
        resolved.data = resolved.text.encode()
        return resolved
    source = _source_kind(record)
    verified, key_sha = check_signature(fetched, settings)
    if source == "inline":
        parsed = manifests.parse(record.manifest)
        text = fetched.data.decode()
    else:
        text, parsed = validated_document(fetched.data)
    resolved = select_profile(text, parsed, requested, source, known_tools)
    resolved.data = fetched.data
    resolved.signature = fetched.signature
    resolved.location = fetched.location
    resolved.signature_location = fetched.signature_location
    resolved.signature_verified = verified
    resolved.signature_key_sha256 = key_sha
    return resolved


def _source_kind(record: ScanRecord) -> str:
    if record.manifest is not None:
        return "inline"
    if record.manifest_path:
        return "path"
    return urlsplit(record.manifest_uri or "").scheme


def _fetch(record: ScanRecord, settings: Settings, source_dir: Path | None) -> Fetched | None:
    if record.manifest is not None:
        sig = record.manifest_signature
        return Fetched(manifests.inline_text(record.manifest).encode(),
                       sig.encode() if isinstance(sig, str) else None, "inline",
                       "manifest_signature" if sig else None)
    if record.manifest_path:
        if source_dir is None:
            raise ManifestSourceError("manifest_path_invalid", "manifest_path needs a source tree")
        return from_source_tree(source_dir, record.manifest_path, settings)
    if record.manifest_uri:
        return fetch_uri(record.manifest_uri, settings, record.manifest_signature_uri,
                         workspace=record.workspace_id)
    return None


def check_signature(fetched: Fetched, settings: Settings) -> tuple[bool, str | None]:
    """(verified, key fingerprint). Fails closed: a signature that does not verify is refused even when
    verification is optional; a missing one is refused when it is required."""
    if fetched.signature is None:
        if settings.manifest_verification_required:
            raise ManifestSignatureError("manifest_signature_missing",
                                         "manifest verification is required and the manifest came without a signature")
        return False, None
    check_signature_shape(fetched.signature)
    if not settings.manifest_verification_key_ref:
        return False, None  # nothing to check against; recorded as present but unverified
    try:
        public_key = signing_keys.load_verification_key(settings.manifest_verification_key_ref)
    except signing_keys.SigningKeyError as exc:
        raise ManifestSignatureError("manifest_verification_key_unavailable",
                                     f"the manifest verification key cannot be used: {exc.message}") from exc
    try:
        signature = signing_keys.decode_signature(fetched.signature)
    except signing_keys.SigningKeyError as exc:
        raise ManifestSignatureError("manifest_signature_invalid", "the manifest signature is not base64") from exc
    if not signing_keys.verify_bytes(public_key, fetched.data, signature):
        raise ManifestSignatureError("manifest_signature_invalid",
                                     "the manifest signature does not verify with the configured key")
    return True, signing_keys.key_id(public_key)


def select_profile(text: str, parsed: manifests.Manifest | None, requested: str, source: str,
                   known_tools: Collection[str] | None = None) -> ResolvedManifest:
    """The manifest's profile of that name wins; one whose tools are empty or all unknown to the
    service falls back to the built-in profile of that name (its unknown tools are still recorded)."""
    tools: list[str] = []
    config: dict[str, Any] = {}
    thresholds: dict[str, int] = {}
    new_findings: dict[str, int] = {}
    unsupported: list[str] = []
    fallback = False
    resolved = requested.strip().lower()
    mprof = parsed.profile(requested) if parsed else None
    if mprof is not None:
        tools = list(mprof.tools)
        config = dict(mprof.tool_config)
        thresholds = dict(mprof.thresholds)
        new_findings = dict(mprof.new_findings)
        resolved = f"manifest:{mprof.name}"
        if known_tools is not None:
            unsupported = [t for t in tools if t not in known_tools]
            if unsupported and len(unsupported) == len(tools):
                tools = []
    base = builtin(requested)
    if not tools:
        if base is None:
            raise manifests.ManifestInvalid({"profile": [f"profile {requested!r} defines no tools the service "
                                                         "supports and there is no built-in profile of that name"]})
        tools = list(base.tools)
        resolved = base.name
        fallback = mprof is not None
    if not text:
        # No manifest given: record the built-in profile that ran, so the bundle says what was used.
        text = json.dumps({"profiles": [{"name": resolved, "tools": tools}]}, sort_keys=True)
    return ResolvedManifest(text=text, digest=manifests.digest(text), parsed=parsed,
                            profile_requested=requested, profile_resolved=resolved, tools=tools,
                            tool_config=config, thresholds=thresholds, new_findings=new_findings,
                            ceiling_minutes=parsed.runtime_ceiling_minutes if parsed else None, source=source,
                            unsupported=unsupported, fallback=fallback)
