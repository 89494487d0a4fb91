"""Local verification of a downloaded bundle: the DSSE envelope in
``reports/signing/attestation.intoto.json`` must carry a valid ECDSA P-256 / SHA-256 signature by the
given cosign public key over an in-toto Statement v1, and every subject's sha256 must match the file
on disk. Nothing here talks to the network."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

ATTESTATION = "reports/signing/attestation.intoto.json"
STATEMENT_TYPES = ("https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1")
PAYLOAD_TYPE = "application/vnd.in-toto+json"


class VerifyError(Exception):
    pass


@dataclass
class Verification:
    subjects: int = 0
    signature_ok: bool = False
    mismatched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unattested: list[str] = field(default_factory=list)
    predicate_type: str | None = None

    @property
    def ok(self) -> bool:
        return self.signature_ok and not self.mismatched and not self.missing and self.subjects > 0


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what the signature actually covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def load_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise VerifyError(f"cannot read a PEM public key from {path}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise VerifyError(f"{path} is not an ECDSA P-256 public key (cosign's key type)")
    return key


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise VerifyError(f"{what} is missing")
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_" if ("-" in value or "_" in value)
                                else None, validate=True)
    except ValueError as exc:
        raise VerifyError(f"{what} is not valid base64") from exc


def _confined(bundle: Path, name: str) -> Path:
    rel = PurePosixPath(name)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise VerifyError(f"subject {name!r} points outside the bundle")
    return bundle.joinpath(*rel.parts)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_bundle(bundle: Path, key_path: Path, attestation: Path | None = None) -> Verification:
    key = load_public_key(key_path)
    att_path = attestation or bundle / ATTESTATION
    try:
        envelope = json.loads(att_path.read_text())
    except (OSError, ValueError) as exc:
        raise VerifyError(f"cannot read the attestation {att_path}: {exc}") from exc
    if not isinstance(envelope, dict):
        raise VerifyError("the attestation is not a DSSE envelope")
    payload_type = envelope.get("payloadType")
    if payload_type != PAYLOAD_TYPE:
        raise VerifyError(f"unexpected payloadType {payload_type!r}")
    payload = _b64(envelope.get("payload"), "payload")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise VerifyError("the envelope has no signatures")
    result = Verification()
    message = pae(payload_type, payload)
    for entry in signatures:
        if not isinstance(entry, dict):
            continue
        try:
            key.verify(_b64(entry.get("sig"), "signature"), message, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, VerifyError):
            continue
        result.signature_ok = True
        break
    if not result.signature_ok:
        return result  # never trust the contents of an unsigned statement
    try:
        statement = json.loads(payload)
    except ValueError as exc:
        raise VerifyError("the signed payload is not JSON") from exc
    if not isinstance(statement, dict) or statement.get("_type") not in STATEMENT_TYPES:
        raise VerifyError("the signed payload is not an in-toto Statement")
    result.predicate_type = statement.get("predicateType")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise VerifyError("the statement names no subjects")
    seen: set[str] = set()
    for subject in subjects:
        name = subject.get("name") if isinstance(subject, dict) else None
        digest = (subject.get("digest") or {}).get("sha256") if isinstance(subject, dict) else None
        if not isinstance(name, str) or not isinstance(digest, str):
            raise VerifyError("a subject lacks a name or a sha256 digest")
        result.subjects += 1
        seen.add(name)
        path = _confined(bundle, name)
        if not path.is_file():
            result.missing.append(name)
        elif sha256_file(path) != digest.lower():
            result.mismatched.append(name)
    att_rel = att_path.resolve().relative_to(bundle.resolve()).as_posix() if att_path.resolve().is_relative_to(
        bundle.resolve()) else None
    for path in sorted(p for p in bundle.rglob("*") if p.is_file()):
        rel = path.relative_to(bundle).as_posix()
        if rel not in seen and rel != att_rel and not rel.endswith(".part"):
            result.unattested.append(rel)
    return result
