"""Offline verification of a scan bundle against the service's public key.

``reports/signing/attestation.intoto.json`` is a DSSE envelope over an in-toto Statement v1 whose
subjects are every other file of the bundle with its sha256, signed with ECDSA P-256 / SHA-256.
A bundle verifies when a signature on the envelope verifies with the key, the statement's
``predicateType`` is the service's scan predicate, and the folder holds exactly the signed files
with their signed digests: none changed, missing or added. Symbolic links are never followed and
special files never read; either one in the bundle fails it.

Only the standard library and ``cryptography``: the command-line client imports this module, and
nothing else of the service, so it verifies bundles anywhere. The workers sign and verify with the
same code (``workers.signing``), so both read a bundle the same way.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

ATTESTATION_PATH = "reports/signing/attestation.intoto.json"
PREDICATE_TYPE = "https://certus-assurance.dev/attestations/security-scan/v1"
INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
# Older readers and cosign itself also produce v0.1; both are read.
ACCEPTED_STATEMENT_TYPES = (STATEMENT_TYPE, "https://in-toto.io/Statement/v0.1")
_HEX64 = re.compile(r"^[0-9a-f]{64}\Z")


class VerifyError(ValueError):
    """Something cannot be verified. ``code`` is stable (docs/errors.md)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class EnvelopeError(VerifyError):
    """The envelope is malformed or no signature on it verifies."""


class StatementError(VerifyError):
    """The payload is not an in-toto statement with named, sha256-digested subjects."""


# -- keys and signatures -------------------------------------------------------------------------
def load_public_key(pem: bytes | str) -> ec.EllipticCurvePublicKey:
    """An ECDSA P-256 public key (cosign's key type) from PEM SubjectPublicKeyInfo."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise VerifyError("key_unreadable", "not a PEM public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise VerifyError("key_unsupported", "only ECDSA P-256 public keys are supported")
    return key


def signature_valid(key: ec.EllipticCurvePublicKey, data: bytes, signature: bytes) -> bool:
    """Whether ``signature`` (DER) is ECDSA P-256 / SHA-256 over ``data`` by ``key``."""
    try:
        key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


# -- DSSE ----------------------------------------------------------------------------------------
def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what a signature actually covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def b64decode(value: Any, what: str) -> bytes:
    """Standard or URL-safe base64, padding optional (DSSE allows both)."""
    if not isinstance(value, str):
        raise EnvelopeError("envelope_malformed", f"{what} is missing or not a string")
    text = value.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EnvelopeError("envelope_malformed", f"{what} is not base64") from exc


@dataclass(frozen=True)
class Verified:
    payload_type: str
    payload: bytes


def parse_envelope(data: bytes | str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(data, dict):
        env = data
    else:
        try:
            env = json.loads(data)
        except ValueError as exc:
            raise EnvelopeError("envelope_malformed", "the envelope is not JSON") from exc
    if not isinstance(env, dict) or not isinstance(env.get("payloadType"), str):
        raise EnvelopeError("envelope_malformed", "the envelope has no payloadType")
    if not isinstance(env.get("signatures"), list) or not env["signatures"]:
        raise EnvelopeError("envelope_malformed", "the envelope carries no signatures")
    return env


def verify_envelope(envelope: bytes | str | dict[str, Any], key: ec.EllipticCurvePublicKey,
                    payload_type: str | None = None) -> Verified:
    """The envelope's payload when at least one of its signatures verifies with ``key``."""
    env = parse_envelope(envelope)
    if payload_type is not None and env["payloadType"] != payload_type:
        raise EnvelopeError("envelope_wrong_type", f"payloadType is {env['payloadType']!r}, expected {payload_type!r}")
    payload = b64decode(env.get("payload"), "payload")
    message = pae(env["payloadType"], payload)
    for entry in env["signatures"]:
        if not isinstance(entry, dict):
            continue
        try:
            sig = b64decode(entry.get("sig"), "signature")
        except EnvelopeError:
            continue
        if signature_valid(key, message, sig):
            return Verified(env["payloadType"], payload)
    raise EnvelopeError("signature_invalid", "no signature on the envelope verifies with the given public key")


# -- in-toto -------------------------------------------------------------------------------------
def decode_statement(payload: bytes) -> dict[str, Any]:
    try:
        stmt = json.loads(payload)
    except ValueError as exc:
        raise StatementError("statement_malformed", "the statement is not JSON") from exc
    if not isinstance(stmt, dict) or stmt.get("_type") not in ACCEPTED_STATEMENT_TYPES:
        raise StatementError("statement_malformed", "not an in-toto statement")
    subjects = stmt.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise StatementError("statement_malformed", "the statement has no subjects")
    for entry in subjects:
        if (not isinstance(entry, dict) or not isinstance(entry.get("name"), str)
                or not isinstance(entry.get("digest"), dict)):
            raise StatementError("statement_malformed", "a subject needs a name and a digest")
    if not isinstance(stmt.get("predicateType"), str):
        raise StatementError("statement_malformed", "the statement has no predicateType")
    return stmt


def subject_digests(stmt: dict[str, Any]) -> dict[str, str]:
    """name -> sha256 of every subject; a name given twice is an error (it would be ambiguous)."""
    out: dict[str, str] = {}
    for entry in stmt["subject"]:
        name = entry["name"]
        digest = entry["digest"].get("sha256")
        if not isinstance(digest, str) or not _HEX64.match(digest):
            raise StatementError("statement_malformed", f"subject {name!r} has no sha256 digest")
        if name in out:
            raise StatementError("statement_malformed", f"subject {name!r} appears twice")
        out[name] = digest
    return out


def is_hex_sha256(value: str) -> bool:
    return bool(_HEX64.match(value))


# -- the bundle folder ---------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    """Hex sha256 of a regular file; a symbolic link in its last part is refused, not followed."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _digest_or_none(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except OSError:  # replaced by a link, or taken away, since it was listed
        return None


@dataclass(frozen=True)
class Listing:
    files: list[str]  # regular files, bundle-relative, sorted
    others: list[str]  # symbolic links and special files (fifos, sockets, devices): never read


def list_bundle(root: Path) -> Listing:
    """Every entry below ``root``, without following a symbolic link anywhere."""
    files: list[str] = []
    others: list[str] = []
    pending = [""]
    while pending:
        folder = pending.pop()
        with os.scandir(root / folder if folder else root) as entries:
            for entry in entries:
                rel = f"{folder}/{entry.name}" if folder else entry.name
                if entry.is_symlink():
                    others.append(rel)
                elif entry.is_dir(follow_symlinks=False):
                    pending.append(rel)
                elif entry.is_file(follow_symlinks=False):
                    files.append(rel)
                else:
                    others.append(rel)
    return Listing(sorted(files), sorted(others))


def _inside(name: str) -> bool:
    """A plain bundle-relative POSIX path: not absolute, no ``..``, ``.`` or empty parts."""
    parts = name.split("/")
    return (bool(name) and "\\" not in name and "\x00" not in name and not PurePosixPath(name).is_absolute()
            and all(p not in ("", ".", "..") for p in parts))


def _regular_attestation(root: Path) -> Path | None:
    """``root/ATTESTATION_PATH`` when every part of it below ``root`` is a real folder or file."""
    path = root
    for part in ATTESTATION_PATH.split("/"):
        path = path / part
        if path.is_symlink():
            return None
    return path if path.is_file() else None


@dataclass
class BundleVerification:
    ok: bool
    code: str | None = None
    message: str = ""
    signature_ok: bool = False
    checked: int = 0
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)  # files the attestation does not cover
    links: list[str] = field(default_factory=list)  # symbolic links and special files
    statement: dict[str, Any] | None = None

    @property
    def predicate_type(self) -> str | None:
        return self.statement.get("predicateType") if self.statement else None


def _failed(code: str, message: str, signature_ok: bool = False) -> BundleVerification:
    return BundleVerification(False, code, message, signature_ok=signature_ok)


def verify_bundle(root: Path, key: ec.EllipticCurvePublicKey, attestation: Path | None = None) -> BundleVerification:
    """Verify the bundle folder ``root``; ``attestation`` overrides where the envelope is read from."""
    env_path = attestation if attestation is not None else _regular_attestation(root)
    if env_path is None:
        return _failed("attestation_missing", f"{ATTESTATION_PATH} is not a regular file in {root}")
    try:
        envelope = env_path.read_bytes()
    except OSError as exc:
        return _failed("attestation_missing", f"cannot read the attestation {env_path}: {exc.strerror}")
    try:
        stmt = decode_statement(verify_envelope(envelope, key, INTOTO_PAYLOAD_TYPE).payload)
        signed = subject_digests(stmt)
    except VerifyError as exc:
        return _failed(exc.code, exc.message, signature_ok=not isinstance(exc, EnvelopeError))
    if stmt["predicateType"] != PREDICATE_TYPE:
        return _failed("attestation_wrong_type",
                       f"predicateType is {stmt['predicateType']!r}, expected {PREDICATE_TYPE!r}", True)
    outside = next((name for name in sorted(signed) if not _inside(name)), None)
    if outside is not None:
        return _failed("statement_malformed", f"subject {outside!r} points outside the bundle", True)
    result = BundleVerification(True, signature_ok=True, statement=stmt)
    skip = {ATTESTATION_PATH}
    if attestation is not None and attestation.resolve().is_relative_to(root.resolve()):
        skip.add(attestation.resolve().relative_to(root.resolve()).as_posix())
    listing = list_bundle(root)
    files, others = set(listing.files) - skip, set(listing.others) - skip
    for name, digest in sorted(signed.items()):
        result.checked += 1
        if name in others:
            result.links.append(name)
        elif name not in files or (actual := _digest_or_none(root / name)) is None:
            result.missing.append(name)
        elif actual != digest:
            result.changed.append(name)
    result.unexpected = sorted(files - set(signed))
    result.links = sorted(set(result.links) | others)
    problems = [(label, names) for label, names in (
        ("changed", result.changed), ("missing", result.missing),
        ("not covered by the attestation", result.unexpected),
        ("symbolic links or special files (never followed)", result.links)) if names]
    if problems:
        result.ok = False
        result.code = "bundle_modified"
        result.message = "; ".join(f"{label}: {', '.join(names)}" for label, names in problems)
    else:
        result.message = f"signature valid; all {len(signed)} files match the attestation"
    return result
