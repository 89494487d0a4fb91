"""The Trust policy on real signed bundles: permit, and each way a request is denied."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tasks.records import ScanRecord
from workers.signing import attestation, signing_keys
from workers.uploads import signing
from workers.uploads.trust import build_request, parse_response
from workers.uploads.trust_policy import MemoryReplayGuard, TrustPolicy, verify_proof

PASSWORD = "pw"  # noqa: S105


def _signer(directory: Path) -> signing_keys.Signer:
    signing_keys.generate_key_pair(directory, PASSWORD)
    return signing_keys.Signer(signing_keys.decrypt_private_key((directory / "cosign.key").read_bytes(), PASSWORD),
                       directory / "cosign.key", directory / "cosign.pub")


@pytest.fixture(scope="module")
def service_signer(tmp_path_factory) -> signing_keys.Signer:
    return _signer(tmp_path_factory.mktemp("svc"))


@pytest.fixture(scope="module")
def other_signer(tmp_path_factory) -> signing_keys.Signer:
    return _signer(tmp_path_factory.mktemp("other"))


@pytest.fixture()
def bundle(tmp_path, service_signer) -> Path:
    root = tmp_path / "test_00000000abcd"
    root.mkdir()
    (root / "scan.json").write_text('{"status": "SUCCEEDED"}')
    (root / "summary.json").write_text('{"total": 3}')
    attestation.attest(root, {"scan": {}}, service_signer)
    return root


@pytest.fixture()
def policy(service_signer, tmp_path) -> TrustPolicy:
    proof = signing.PemSigner(signing.load_or_create_pem_key(tmp_path / "trust" / "trust.pem"))
    return TrustPolicy(signer_keys={"certus-assurance": signing.load_public_key(service_signer.public_key_pem),
                                    "release-bot": signing.load_public_key(service_signer.public_key_pem)},
                       allowed_signers={"basic": ("certus-assurance", "release-bot"),
                                        "verified": ("certus-assurance",)},
                       proof_signer=proof, replay=MemoryReplayGuard())


RECORD = ScanRecord(test_id="test_00000000abcd", workspace_id="ws", component_id="c", assessment_id="a",
                    profile="light", git_url="https://git.example/r.git", branch="main", resolved_commit="a" * 40)


def _request(bundle, signer, tier="verified", name="certus-assurance"):
    return build_request(root=bundle, record=RECORD, tier=tier, signer_name=name, signer=signer,
                         destinations={"raw_s3": "s3://raw/x/", "oci_registry": "r/x:t"})


def test_permit_carries_a_signed_proof_over_every_artifact(policy, bundle, service_signer):
    req = _request(bundle, service_signer)
    assert all(a["hash"].startswith("sha256:") and len(a["hash"]) == 71 for a in req["artifacts"])
    assert {a["name"] for a in req["artifacts"]} == {"scan.json", "summary.json", attestation.ATTESTATION_PATH}
    assert req["metadata"]["commit"] == "a" * 40
    # the inner signature is a real signature over the attestation, by the service key
    att = (bundle / attestation.ATTESTATION_PATH).read_bytes()
    signature = base64.b64decode(req["inner_signature"]["signature"])
    assert signing_keys.verify_bytes(service_signer.public_key_pem, att, signature)
    decision = policy.decide(json.loads(json.dumps(req)))
    assert decision.permitted, decision
    stmt = verify_proof(decision.proof, signing.load_public_key(policy.proof_signer.public_key_pem))
    assert stmt["scan_id"] == RECORD.test_id and stmt["upload_permission_id"] == decision.permission_id
    body = decision.response(RECORD.test_id, "verified")
    assert parse_response(body, RECORD.test_id).permitted


def test_wrong_signer_for_tier_is_denied(policy, bundle, service_signer):
    assert policy.decide(_request(bundle, service_signer, name="mallory")).reason == "signer_not_allowed"
    assert policy.decide(_request(bundle, service_signer, tier="verified", name="release-bot")).reason == \
        "signer_not_allowed"
    assert policy.decide(_request(bundle, service_signer, tier="basic", name="release-bot")).permitted


def test_signature_by_another_key_is_denied(policy, bundle, other_signer):
    decision = policy.decide(_request(bundle, other_signer))
    assert not decision.permitted and decision.reason == "signature_invalid"


def test_tampered_artifact_is_denied(policy, bundle, service_signer):
    (bundle / "summary.json").write_text('{"total": 0}')
    decision = policy.decide(_request(bundle, service_signer))
    assert decision.reason == "artifact_mismatch" and "summary.json" in decision.detail


def test_extra_file_not_covered_is_denied(policy, bundle, service_signer):
    (bundle / "extra.txt").write_text("smuggled")
    decision = policy.decide(_request(bundle, service_signer))
    assert decision.reason == "artifact_mismatch" and "extra.txt" in decision.detail


def test_attestation_signed_by_another_key_is_denied(policy, bundle, service_signer, other_signer):
    attestation.attest(bundle, {"scan": {}}, other_signer)
    assert policy.decide(_request(bundle, service_signer)).reason == "attestation_signature_invalid"


def test_replay_is_refused(policy, bundle, service_signer):
    req = _request(bundle, service_signer)
    assert policy.decide(req).permitted
    again = policy.decide(json.loads(json.dumps(req)))
    assert not again.permitted and again.reason == "replay"


def test_stale_and_malformed_requests_are_denied(policy, bundle, service_signer):
    req = _request(bundle, service_signer)
    req["inner_signature"]["timestamp"] -= 3600
    assert policy.decide(req).reason == "stale_request"
    assert policy.decide({"scan_id": "x"}).permitted is False
    assert policy.decide([]).reason == "malformed_request"
    req = _request(bundle, service_signer)
    req["artifacts"][0]["hash"] = "md5:abc"
    assert policy.decide(req).reason == "malformed_request"


@pytest.mark.parametrize("body", [None, [], {"permitted": "yes", "scan_id": "test_00000000abcd"},
                                  {"permitted": True, "scan_id": "test_00000000abcd"},
                                  {"permitted": True, "scan_id": "other", "upload_permission_id": "p",
                                   "verification_proof": {}}])
def test_remote_answers_that_are_not_clear_permits_deny(body):
    assert parse_response(body, "test_00000000abcd").permitted is False
