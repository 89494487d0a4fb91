"""DSSE envelopes (Dead Simple Signing Envelope, v1).

The signature covers the pre-authentication encoding (PAE), never the raw payload::

    PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

where LEN is the byte length in ASCII decimal. The envelope is JSON with ``payloadType``, the
base64 ``payload`` and a list of ``signatures`` (``keyid``, base64 ``sig``). cosign writes and
accepts exactly this shape for blob attestations.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from workers.signing import keys

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


class EnvelopeError(ValueError):
    """The envelope is malformed or no signature on it verifies. ``code`` is stable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def sign(payload: bytes, payload_type: str, signer: keys.Signer | ec.EllipticCurvePrivateKey,
         keyid: str = "") -> dict[str, Any]:
    """A DSSE envelope over ``payload``. ``keyid`` stays empty by default, as cosign leaves it."""
    message = pae(payload_type, payload)
    sig = signer.sign(message) if isinstance(signer, keys.Signer) else keys.sign_bytes(signer, message)
    return {"payloadType": payload_type,
            "payload": base64.b64encode(payload).decode(),
            "signatures": [{"keyid": keyid, "sig": base64.b64encode(sig).decode()}]}


@dataclass(frozen=True)
class Verified:
    payload_type: str
    payload: bytes


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise EnvelopeError("envelope_malformed", f"{what} is missing or not a string")
    try:
        # DSSE allows standard or URL-safe base64; accept both, padding optional.
        text = value.replace("-", "+").replace("_", "/")
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EnvelopeError("envelope_malformed", f"{what} is not base64") from exc


def parse(data: bytes | str | dict[str, Any]) -> dict[str, Any]:
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


def verify(envelope: bytes | str | dict[str, Any], public_key: ec.EllipticCurvePublicKey | bytes | str,
           payload_type: str | None = None) -> Verified:
    """The envelope's payload when at least one of its signatures verifies with ``public_key``."""
    env = parse(envelope)
    if payload_type is not None and env["payloadType"] != payload_type:
        raise EnvelopeError("envelope_wrong_type", f"payloadType is {env['payloadType']!r}, expected {payload_type!r}")
    payload = _b64(env.get("payload"), "payload")
    message = pae(env["payloadType"], payload)
    key = public_key if isinstance(public_key, ec.EllipticCurvePublicKey) else keys.load_public_key(public_key)
    for entry in env["signatures"]:
        if not isinstance(entry, dict):
            continue
        try:
            sig = _b64(entry.get("sig"), "signature")
        except EnvelopeError:
            continue
        if keys.verify_bytes(key, message, sig):
            return Verified(env["payloadType"], payload)
    raise EnvelopeError("signature_invalid", "no signature on the envelope verifies with the given public key")
