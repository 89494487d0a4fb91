"""DSSE envelopes (Dead Simple Signing Envelope, v1).

The signature covers the pre-authentication encoding (PAE), never the raw payload::

    PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

where LEN is the byte length in ASCII decimal. The envelope is JSON with ``payloadType``, the
base64 ``payload`` and a list of ``signatures`` (``keyid``, base64 ``sig``). cosign writes and
accepts exactly this shape for blob attestations. Reading and verifying is
``tasks.bundle_verifier``'s, the code the command-line client verifies bundles with.
"""

from __future__ import annotations

import base64
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from tasks.bundle_verifier import INTOTO_PAYLOAD_TYPE, EnvelopeError, Verified, pae, parse_envelope, verify_envelope
from workers.signing import signing_keys

__all__ = ["INTOTO_PAYLOAD_TYPE", "EnvelopeError", "Verified", "pae", "parse", "sign", "verify"]

parse = parse_envelope


def sign(payload: bytes, payload_type: str, signer: signing_keys.Signer | ec.EllipticCurvePrivateKey,
         keyid: str = "") -> dict[str, Any]:
    """A DSSE envelope over ``payload``. ``keyid`` stays empty by default, as cosign leaves it."""
    message = pae(payload_type, payload)
    sig = signer.sign(message) if isinstance(signer, signing_keys.Signer) else signing_keys.sign_bytes(signer, message)
    return {"payloadType": payload_type,
            "payload": base64.b64encode(payload).decode(),
            "signatures": [{"keyid": keyid, "sig": base64.b64encode(sig).decode()}]}


def verify(envelope: bytes | str | dict[str, Any], public_key: ec.EllipticCurvePublicKey | bytes | str,
           payload_type: str | None = None) -> Verified:
    """The envelope's payload when at least one of its signatures verifies with ``public_key``."""
    key = public_key if isinstance(public_key, ec.EllipticCurvePublicKey) else signing_keys.load_public_key(public_key)
    return verify_envelope(envelope, key, payload_type)
