"""The bundle attestation: a DSSE-signed in-toto Statement v1 over every other file of a bundle.

Written last, after every other file is final, to ``reports/signing/attestation.intoto.json``.
Verification recomputes the sha256 of every file in the bundle and requires an exact match with the
signed subjects: a changed, added or removed file fails.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from workers.bundle import BundlePathError, confine, sha256_file
from workers.signing import dsse, intoto, keys

ATTESTATION_PATH = "reports/signing/attestation.intoto.json"
PREDICATE_TYPE = "https://certus-assurance.dev/attestations/security-scan/v1"


def bundle_files(root: Path) -> list[str]:
    """Bundle-relative paths of every regular file except the attestation, sorted.

    Symlinks are listed too (and then fail to verify), so nothing can hide behind one."""
    out = []
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if rel == ATTESTATION_PATH:
            continue
        if path.is_symlink() or path.is_file():
            out.append(rel)
    return sorted(out)


def attest(root: Path, predicate: Mapping[str, Any], signer: keys.Signer) -> dict[str, Any]:
    """Sign a statement over every file now in ``root`` and write it into the bundle."""
    subjects = {rel: sha256_file(root / rel) for rel in bundle_files(root)}
    stmt = intoto.statement(subjects, PREDICATE_TYPE, dict(predicate))
    envelope = dsse.sign(intoto.encode(stmt), dsse.INTOTO_PAYLOAD_TYPE, signer)
    target = root / ATTESTATION_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(envelope, indent=2) + "\n")
    return stmt


@dataclass
class BundleVerification:
    ok: bool
    code: str | None = None
    message: str = ""
    checked: int = 0
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    statement: dict[str, Any] | None = None


def verify_bundle(root: Path, public_key: ec.EllipticCurvePublicKey | bytes | str) -> BundleVerification:
    env_path = root / ATTESTATION_PATH
    if not env_path.is_file() or env_path.is_symlink():
        return BundleVerification(False, "attestation_missing", f"{ATTESTATION_PATH} not found in {root}")
    try:
        verified = dsse.verify(env_path.read_bytes(), public_key, dsse.INTOTO_PAYLOAD_TYPE)
        stmt = intoto.decode(verified.payload)
        signed = intoto.subject_digests(stmt)
    except (dsse.EnvelopeError, intoto.StatementError, keys.SigningKeyError) as exc:
        return BundleVerification(False, exc.code, exc.message)
    if stmt.get("predicateType") != PREDICATE_TYPE:
        return BundleVerification(False, "attestation_wrong_type",
                                  f"predicateType is {stmt.get('predicateType')!r}, expected {PREDICATE_TYPE!r}")
    result = BundleVerification(True, statement=stmt)
    present = set(bundle_files(root))
    for name, digest in sorted(signed.items()):
        try:
            path = confine(root, name)
        except BundlePathError:
            result.missing.append(name)
            continue
        if name not in present or not path.is_file() or (root / name).is_symlink():
            result.missing.append(name)
        elif sha256_file(path) != digest:
            result.changed.append(name)
        result.checked += 1
    result.unexpected = sorted(present - set(signed))
    if result.changed or result.missing or result.unexpected:
        result.ok = False
        result.code = "bundle_modified"
        parts = []
        for label, names in (("changed", result.changed), ("missing", result.missing),
                             ("not covered by the attestation", result.unexpected)):
            if names:
                parts.append(f"{label}: {', '.join(names)}")
        result.message = "; ".join(parts)
    else:
        result.message = f"signature valid; all {len(signed)} files match the attestation"
    return result
