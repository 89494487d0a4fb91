"""The upload side's view of signing: the service's signer (``workers.signing``), the bundle's
attestation, and the Trust's own proof-signing key."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tasks.settings import Settings
from workers.signing import dsse, intoto, signing_keys
from workers.signing.attestation import ATTESTATION_PATH, PREDICATE_TYPE

INTOTO_PAYLOAD_TYPE = dsse.INTOTO_PAYLOAD_TYPE
__all__ = ["ATTESTATION_PATH", "INTOTO_PAYLOAD_TYPE", "PREDICATE_TYPE", "Signer"]


class Signer(Protocol):
    @property
    def public_key_pem(self) -> bytes: ...
    def sign(self, data: bytes) -> bytes: ...


class PemSigner:
    """A plain ECDSA P-256 key (the Trust's proof key), signing like ``signing_keys.Signer``."""

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self.key = key

    @property
    def public_key_pem(self) -> bytes:
        return signing_keys.public_pem(self.key)

    def sign(self, data: bytes) -> bytes:
        return signing_keys.sign_bytes(self.key, data)


def load_or_create_pem_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """A PEM private key at ``path``, generated (mode 0600, race-safe) when missing."""
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
            pass  # another process won the race; use its key
        finally:
            os.unlink(tmp)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} is not an EC private key")
    return loaded


def load_service_signer(settings: Settings) -> signing_keys.Signer:
    return signing_keys.load_signer(settings)


def load_public_key(pem: bytes | str) -> ec.EllipticCurvePublicKey:
    return signing_keys.load_public_key(pem)


def verify_bytes(public_key: ec.EllipticCurvePublicKey, data: bytes, signature: bytes) -> bool:
    return signing_keys.verify_bytes(public_key, data, signature)


def dsse_envelope(payload: bytes, payload_type: str, signer: Signer) -> dict[str, Any]:
    sig = signer.sign(dsse.pae(payload_type, payload))
    return {"payloadType": payload_type, "payload": base64.b64encode(payload).decode(),
            "signatures": [{"keyid": "", "sig": base64.b64encode(sig).decode()}]}


def statement(subjects: dict[str, str], predicate_type: str, predicate: Any) -> dict[str, Any]:
    return intoto.statement(subjects, predicate_type, predicate)


def encode_statement(stmt: dict[str, Any]) -> bytes:
    return intoto.encode(stmt)
