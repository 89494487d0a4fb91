"""Local verification of a downloaded bundle, with the service's own verifier
(``tasks.bundle_verifier``: the standard library and ``cryptography`` only, nothing else of the
service). The DSSE envelope in ``reports/signing/attestation.intoto.json`` must carry a valid
ECDSA P-256 / SHA-256 signature by the given cosign public key over the service's in-toto
statement, and the folder must hold exactly the signed files with their signed sha256: a changed,
missing or added file fails, and so does a symbolic link (never followed). Nothing here talks to
the network."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tasks import bundle_verifier
from tasks.bundle_verifier import ATTESTATION_PATH, pae

__all__ = ["ATTESTATION_PATH", "Verification", "VerifyError", "pae", "verify_bundle"]

# A signature that does not verify, or files that differ, are a result; everything else is an error.
_RESULT_CODES = ("signature_invalid", "bundle_modified", None)


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
        return (self.signature_ok and not self.mismatched and not self.missing and not self.unattested
                and self.subjects > 0)


def verify_bundle(bundle: Path, key_path: Path, attestation: Path | None = None) -> Verification:
    try:
        key = bundle_verifier.load_public_key(key_path.read_bytes())
    except (OSError, bundle_verifier.VerifyError) as exc:
        raise VerifyError(f"cannot read a PEM public key from {key_path}: {exc}") from exc
    result = bundle_verifier.verify_bundle(bundle, key, attestation)
    if result.code not in _RESULT_CODES:
        raise VerifyError(result.message)
    if result.links:
        raise VerifyError(f"symbolic links and special files are never followed: {', '.join(result.links)}")
    return Verification(subjects=result.checked, signature_ok=result.signature_ok, mismatched=result.changed,
                        missing=result.missing, unattested=result.unexpected, predicate_type=result.predicate_type)
