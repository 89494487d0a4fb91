"""The Trust policy: decides one ``verify-and-permit-upload`` request.

Used in-process by the embedded Trust client and behind HTTP by the standalone ``trust_service``.
It verifies with keys it holds itself (configured per signer, never taken from the request):

1. the request is well formed and names a signer allowed for its tier;
2. the signature timestamp is within the allowed clock skew;
3. the attestation sent with the request is the one listed among the artifacts (same sha256);
4. the inner signature over the attestation verifies with that signer's key;
5. the attestation's DSSE signature verifies with the same key, and its in-toto statement covers
   exactly the listed artifacts with the same sha256 digests (nothing missing, nothing extra);
6. the inner signature was never seen before (replays are refused).

A permit carries a verification proof signed with the Trust's own key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric import ec

from tasks import keyspace
from workers.signing import dsse, intoto
from workers.uploads import signing

ALGORITHM = "ecdsa-p256-sha256"
PROOF_TYPE = "https://certus-assurance.dev/trust/verification-proof/v1"
_HASH = re.compile(r"^sha256:[0-9a-f]{64}\Z")
_SCAN_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}\Z")


class ReplayGuard(Protocol):
    def first_use(self, token: str, ttl: int) -> bool: ...


class MemoryReplayGuard:
    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_use(self, token: str, ttl: int) -> bool:
        now = time.time()
        with self._lock:
            for old in [k for k, exp in self._seen.items() if exp < now]:
                del self._seen[old]
            if token in self._seen:
                return False
            self._seen[token] = now + ttl
            return True


class RedisReplayGuard:
    def __init__(self, client: Any, prefix: str = keyspace.TRUST_SEEN_PREFIX) -> None:
        self.redis = client
        self.prefix = prefix

    def first_use(self, token: str, ttl: int) -> bool:
        return bool(self.redis.set(self.prefix + token, "1", nx=True, ex=max(ttl, 1)))


@dataclass(frozen=True)
class Decision:
    permitted: bool
    reason: str | None = None
    detail: str | None = None
    permission_id: str | None = None
    proof: dict[str, Any] | None = None

    def response(self, scan_id: str, tier: str) -> dict[str, Any]:
        body: dict[str, Any] = {"upload_permission_id": self.permission_id, "scan_id": scan_id, "tier": tier,
                                "permitted": self.permitted}
        if self.permitted:
            body["verification_proof"] = self.proof
            body["storage_config"] = None
        else:
            body["reason"] = self.reason
            body["detail"] = self.detail
        return body


class _Deny(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise _Deny("malformed_request", f"{what} is missing")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _Deny("malformed_request", f"{what} is not base64") from exc


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def verify_proof(proof: Mapping[str, Any], trust_public_key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    """The proof's statement when its signature verifies with the Trust's key; raises ValueError otherwise."""
    stmt = proof.get("statement")
    sig = proof.get("signature")
    if not isinstance(stmt, dict) or not isinstance(sig, str):
        raise ValueError("not a verification proof")
    if not signing.verify_bytes(trust_public_key, canonical(stmt), base64.b64decode(sig)):
        raise ValueError("the verification proof's signature does not verify")
    return stmt


class TrustPolicy:
    def __init__(self, *, signer_keys: Mapping[str, ec.EllipticCurvePublicKey],
                 allowed_signers: Mapping[str, tuple[str, ...]], proof_signer: signing.Signer,
                 replay: ReplayGuard, max_clock_skew: int = 300, replay_ttl: int = 30 * 24 * 3600) -> None:
        self.signer_keys = dict(signer_keys)
        self.allowed_signers = dict(allowed_signers)
        self.proof_signer = proof_signer
        self.replay = replay
        self.max_clock_skew = max_clock_skew
        self.replay_ttl = replay_ttl

    def decide(self, request: Any) -> Decision:
        try:
            return self._decide(request)
        except _Deny as deny:
            return Decision(False, deny.reason, deny.detail)

    # -- checks ------------------------------------------------------------------------------
    def _decide(self, req: Any) -> Decision:
        if not isinstance(req, dict):
            raise _Deny("malformed_request", "the request is not a JSON object")
        scan_id, tier = req.get("scan_id"), req.get("tier")
        if not isinstance(scan_id, str) or not _SCAN_ID.match(scan_id):
            raise _Deny("malformed_request", "scan_id is missing or invalid")
        if tier not in self.allowed_signers:
            raise _Deny("tier_unknown", f"tier {tier!r} is not offered")
        inner = req.get("inner_signature")
        if not isinstance(inner, dict):
            raise _Deny("malformed_request", "inner_signature is missing")
        signer = inner.get("signer")
        if not isinstance(signer, str) or signer not in self.allowed_signers[tier]:
            raise _Deny("signer_not_allowed", f"signer {signer!r} is not allowed for the {tier} tier")
        key = self.signer_keys.get(signer)
        if key is None:
            raise _Deny("signer_unknown", f"no key is held for signer {signer!r}")
        if inner.get("algorithm") != ALGORITHM:
            raise _Deny("algorithm_unsupported", f"algorithm must be {ALGORITHM}")
        stamp = inner.get("timestamp")
        if not isinstance(stamp, int | float) or isinstance(stamp, bool):
            raise _Deny("malformed_request", "inner_signature.timestamp must be epoch seconds")
        if abs(time.time() - float(stamp)) > self.max_clock_skew:
            raise _Deny("stale_request", "the signature timestamp is outside the allowed clock skew")
        artifacts = self._artifacts(req.get("artifacts"))
        attestation = req.get("attestation")
        if not isinstance(attestation, dict) or not isinstance(attestation.get("name"), str):
            raise _Deny("attestation_missing", "the request carries no attestation")
        att_name = attestation["name"]
        att_bytes = _b64(attestation.get("content"), "attestation.content")
        att_hash = "sha256:" + hashlib.sha256(att_bytes).hexdigest()
        if artifacts.get(att_name) != att_hash:
            raise _Deny("attestation_mismatch", "the attestation is not the one listed among the artifacts")
        signature = _b64(inner.get("signature"), "inner_signature.signature")
        if not signing.verify_bytes(key, att_bytes, signature):
            raise _Deny("signature_invalid", f"the inner signature does not verify with {signer}'s key")
        subjects = self._signed_subjects(att_bytes, key)
        listed = {name: digest for name, digest in artifacts.items() if name != att_name}
        changed = sorted(n for n in listed if n in subjects and subjects[n] != listed[n])
        extra = sorted(set(listed) - set(subjects))
        missing = sorted(set(subjects) - set(listed))
        if changed or extra or missing:
            parts = [f"{label}: {', '.join(names)}" for label, names in
                     (("digest differs from the attestation", changed), ("not covered by the attestation", extra),
                      ("attested but not listed", missing)) if names]
            raise _Deny("artifact_mismatch", "; ".join(parts))
        token = hashlib.sha256(signature).hexdigest()
        if not self.replay.first_use(token, self.replay_ttl):
            raise _Deny("replay", "this signed request was already used")
        return self._permit(req, scan_id, tier, signer, artifacts, att_hash)

    @staticmethod
    def _artifacts(value: Any) -> dict[str, str]:
        if not isinstance(value, list) or not value:
            raise _Deny("malformed_request", "artifacts must be a non-empty list")
        out: dict[str, str] = {}
        for entry in value:
            if (not isinstance(entry, dict) or not isinstance(entry.get("name"), str)
                    or not isinstance(entry.get("hash"), str) or not _HASH.match(entry["hash"])
                    or not isinstance(entry.get("size"), int)):
                raise _Deny("malformed_request", "each artifact needs name, hash (sha256:<hex>) and size")
            if entry["name"] in out:
                raise _Deny("malformed_request", f"artifact {entry['name']!r} is listed twice")
            out[entry["name"]] = entry["hash"]
        return out

    @staticmethod
    def _signed_subjects(att_bytes: bytes, key: ec.EllipticCurvePublicKey) -> dict[str, str]:
        try:
            verified = dsse.verify(att_bytes, key, dsse.INTOTO_PAYLOAD_TYPE)
        except dsse.EnvelopeError as exc:
            if exc.code == "signature_invalid":
                raise _Deny("attestation_signature_invalid", "the attestation's signature does not verify") from exc
            raise _Deny("attestation_malformed", exc.message) from exc
        try:
            stmt = intoto.decode(verified.payload)
            subjects = intoto.subject_digests(stmt)
        except intoto.StatementError as exc:
            raise _Deny("attestation_malformed", exc.message) from exc
        if stmt.get("predicateType") != signing.PREDICATE_TYPE:
            raise _Deny("attestation_malformed", "the attestation is not a Certus Assurance scan attestation")
        return {name: "sha256:" + digest for name, digest in subjects.items()}

    def _permit(self, req: dict[str, Any], scan_id: str, tier: str, signer: str, artifacts: dict[str, str],
                att_hash: str) -> Decision:
        permission_id = "perm_" + secrets.token_hex(12)
        stmt = {
            "type": PROOF_TYPE,
            "upload_permission_id": permission_id,
            "scan_id": scan_id,
            "tier": tier,
            "signer": signer,
            "attestation": att_hash,
            "artifacts": dict(sorted(artifacts.items())),
            "metadata": req.get("metadata") if isinstance(req.get("metadata"), dict) else {},
            "verified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "checks": ["signer_allowed", "timestamp_fresh", "inner_signature", "attestation_signature",
                       "artifact_digests", "not_replayed"],
        }
        proof = {"statement": stmt, "algorithm": ALGORITHM,
                 "signature": base64.b64encode(self.proof_signer.sign(canonical(stmt))).decode(),
                 "public_key": self.proof_signer.public_key_pem.decode()}
        return Decision(True, permission_id=permission_id, proof=proof)
