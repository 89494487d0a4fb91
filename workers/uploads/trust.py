"""The Certus-Trust port: the contract's request, and two clients behind one interface.

``RemoteTrustClient`` calls ``{trust}/v1/verify-and-permit-upload`` over verified TLS and FAILS
CLOSED: a timeout, a connection or TLS error, a non-2xx answer or a body that is not a well-formed
answer is a denial with a reason, never a permit. ``EmbeddedTrustClient`` runs the same policy
(``trust_policy.TrustPolicy``) in the worker.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import requests

from tasks.records import ScanRecord
from workers.bundle import sha256_file
from workers.uploads import signing
from workers.uploads.trust_policy import ALGORITHM, Decision, TrustPolicy

log = logging.getLogger(__name__)
VERIFY_PATH = "/v1/verify-and-permit-upload"


@dataclass(frozen=True)
class BundleFile:
    name: str
    sha256: str
    size: int


def bundle_files(root: Path) -> list[BundleFile]:
    """Every regular file of a bundle, sorted; symlinks are refused outright."""
    out = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            raise ValueError(f"the bundle holds a symlink: {path.relative_to(root).as_posix()}")
        if path.is_file():
            out.append(BundleFile(path.relative_to(root).as_posix(), sha256_file(path), path.stat().st_size))
    return out


def build_request(*, root: Path, record: ScanRecord, tier: str, signer_name: str, signer: signing.Signer,
                  destinations: dict[str, str]) -> dict[str, Any]:
    """The contract's request for the bundle at ``root``, with a fresh signature over its attestation."""
    files = bundle_files(root)
    attestation = (root / signing.ATTESTATION_PATH).read_bytes()
    source = _scan_source(root)
    return {
        "scan_id": record.test_id,
        "tier": tier,
        "inner_signature": {
            "signer": signer_name,
            "timestamp": time.time(),
            "signature": base64.b64encode(signer.sign(attestation)).decode(),
            "algorithm": ALGORITHM,
            "certificate": None,
        },
        "artifacts": [{"name": f.name, "hash": f"sha256:{f.sha256}", "size": f.size} for f in files],
        "metadata": {
            "git_url": source.get("git_url") or record.git_url,
            "branch": source.get("branch") or record.branch,
            "commit": source.get("resolved_commit") or record.resolved_commit,
            "requested_by": record.requested_by,
        },
        "storage_destinations": destinations,
        # Extension: the attestation itself, so the Trust can check what the artifacts' digests are signed as.
        "attestation": {"name": signing.ATTESTATION_PATH, "content": base64.b64encode(attestation).decode(),
                        "sha256": hashlib.sha256(attestation).hexdigest()},
    }


def _scan_source(root: Path) -> dict[str, Any]:
    """The source as the scan resolved it (branch included when the default branch was used)."""
    try:
        source = json.loads((root / "scan.json").read_text()).get("source")
    except (OSError, ValueError):
        return {}
    return source if isinstance(source, dict) else {}


class TrustClient(Protocol):
    def verify_and_permit(self, request: dict[str, Any]) -> Decision: ...


class EmbeddedTrustClient:
    def __init__(self, policy: TrustPolicy) -> None:
        self.policy = policy

    def verify_and_permit(self, request: dict[str, Any]) -> Decision:
        return self.policy.decide(request)


class RemoteTrustClient:
    def __init__(self, base_url: str, *, timeout: float, ca_bundle: str = "",
                 session: requests.Session | None = None) -> None:
        self.url = base_url.rstrip("/") + VERIFY_PATH
        self.timeout = timeout
        self.verify: bool | str = ca_bundle or True  # never False: TLS is always verified
        self.session = session or requests.Session()

    def verify_and_permit(self, request: dict[str, Any]) -> Decision:
        try:
            resp = self.session.post(self.url, json=request, timeout=(min(5.0, self.timeout), self.timeout),
                                     verify=self.verify, allow_redirects=False)
        except requests.Timeout:
            return Decision(False, "trust_timeout", "Certus-Trust did not answer in time")
        except requests.exceptions.SSLError:
            return Decision(False, "trust_tls_error", "Certus-Trust's TLS certificate did not verify")
        except requests.RequestException as exc:
            return Decision(False, "trust_unreachable", f"Certus-Trust is unreachable ({exc.__class__.__name__})")
        if resp.status_code in (502, 503, 504):
            return Decision(False, "trust_unavailable", f"Certus-Trust answered HTTP {resp.status_code}")
        if not 200 <= resp.status_code < 300:
            return Decision(False, "trust_error", f"Certus-Trust answered HTTP {resp.status_code}")
        try:
            body = resp.json()
        except ValueError:
            return Decision(False, "trust_malformed_response", "Certus-Trust's answer is not JSON")
        return parse_response(body, request["scan_id"])


def parse_response(body: Any, scan_id: str) -> Decision:
    """A contract response as a Decision; anything not clearly a permit is a denial."""
    malformed = Decision(False, "trust_malformed_response", "Certus-Trust's answer does not follow the contract")
    if not isinstance(body, dict) or not isinstance(body.get("permitted"), bool):
        return malformed
    if body.get("scan_id") != scan_id:
        return Decision(False, "trust_malformed_response", "Certus-Trust answered for another scan")
    if not body["permitted"]:
        reason = str(body["reason"]) if isinstance(body.get("reason"), str) else "denied"
        detail = str(body["detail"]) if isinstance(body.get("detail"), str) else ""
        return Decision(False, reason[:64], detail[:500] or None)
    permission_id, proof = body.get("upload_permission_id"), body.get("verification_proof")
    if not isinstance(permission_id, str) or not permission_id or not isinstance(proof, dict):
        return malformed
    return Decision(True, permission_id=permission_id, proof=proof)
