"""The bundle attestation: a DSSE-signed in-toto Statement v1 over every other file of a bundle.

Written last, after every other file is final, to ``reports/signing/attestation.intoto.json``.
Verification (``tasks.bundle_verifier``, the same code the command-line client runs) recomputes the
sha256 of every file in the bundle and requires an exact match with the signed subjects: a changed,
added or removed file fails, and so does a symbolic link or special file anywhere in the bundle.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from tasks.bundle_verifier import (
    ATTESTATION_PATH,
    PREDICATE_TYPE,
    BundleVerification,
    list_bundle,
    sha256_file,
)
from tasks.bundle_verifier import verify_bundle as _verify
from workers.signing import dsse, intoto, signing_keys

__all__ = ["ATTESTATION_PATH", "PREDICATE_TYPE", "BundleVerification", "attest", "bundle_files", "verify_bundle"]


def bundle_files(root: Path) -> list[str]:
    """Bundle-relative paths of every regular file except the attestation, sorted. Symbolic links
    and special files are never signed (and fail verification wherever they are)."""
    return [rel for rel in list_bundle(root).files if rel != ATTESTATION_PATH]


def attest(root: Path, predicate: Mapping[str, Any], signer: signing_keys.Signer) -> dict[str, Any]:
    """Sign a statement over every file now in ``root`` and write it into the bundle."""
    subjects = {rel: sha256_file(root / rel) for rel in bundle_files(root)}
    stmt = intoto.statement(subjects, PREDICATE_TYPE, dict(predicate))
    envelope = dsse.sign(intoto.encode(stmt), dsse.INTOTO_PAYLOAD_TYPE, signer)
    target = root / ATTESTATION_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(envelope, indent=2) + "\n")
    return stmt


def verify_bundle(root: Path, public_key: ec.EllipticCurvePublicKey | bytes | str) -> BundleVerification:
    """The bundle folder ``root`` checked against ``public_key`` (a key or its PEM)."""
    try:
        key = (public_key if isinstance(public_key, ec.EllipticCurvePublicKey)
               else signing_keys.load_public_key(public_key))
    except signing_keys.SigningKeyError as exc:
        return BundleVerification(False, exc.code, exc.message)
    return _verify(root, key)
