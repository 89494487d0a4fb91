"""The upload side's view of signing: the service's signer and the bundle's attestation.

A small port so the rest of the upload code does not care where keys live.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tasks.settings import Settings
from workers.bundle import sha256_file

ATTESTATION_PATH = "reports/signing/attestation.intoto.json"
INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://certus-assurance.dev/attestations/security-scan/v1"


class Signer(Protocol):
    @property
    def public_key_pem(self) -> bytes: ...
    def sign(self, data: bytes) -> bytes: ...


class PemSigner:
    """ECDSA P-256 / SHA-256, DER signatures: what cosign makes and checks."""

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self.key = key

    @property
    def public_key_pem(self) -> bytes:
        return self.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))


def load_or_create_pem_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """A PEM private key at ``path``, generated (0600, race-safe) when missing."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} is not an EC private key")
    return loaded


def load_service_signer(settings: Settings) -> Signer:
    return PemSigner(load_or_create_pem_key(Path(settings.artifact_root) / ".keys" / "service.pem"))


def load_public_key(pem: bytes | str) -> ec.EllipticCurvePublicKey:
    key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("not an EC public key")
    return key


def verify_bytes(public_key: ec.EllipticCurvePublicKey, data: bytes, signature: bytes) -> bool:
    try:
        public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        return True
    except InvalidSignature:
        return False


def pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def dsse_envelope(payload: bytes, payload_type: str, signer: Signer) -> dict[str, Any]:
    sig = signer.sign(pae(payload_type, payload))
    return {"payloadType": payload_type, "payload": base64.b64encode(payload).decode(),
            "signatures": [{"keyid": "", "sig": base64.b64encode(sig).decode()}]}


def statement(subjects: dict[str, str], predicate_type: str, predicate: Any) -> dict[str, Any]:
    return {"_type": STATEMENT_TYPE,
            "subject": [{"name": n, "digest": {"sha256": subjects[n]}} for n in sorted(subjects)],
            "predicateType": predicate_type, "predicate": predicate}


def encode_statement(stmt: dict[str, Any]) -> bytes:
    return json.dumps(stmt, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def ensure_attestation(root: Path, signer: Signer) -> Path:
    """The bundle's attestation; written here only for bundles made before scans attested them."""
    target = root / ATTESTATION_PATH
    if target.is_file():
        return target
    subjects = {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}
    stmt = statement(subjects, PREDICATE_TYPE, {"test_id": root.name})
    envelope = dsse_envelope(encode_statement(stmt), INTOTO_PAYLOAD_TYPE, signer)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(envelope, indent=2) + "\n")
    return target
