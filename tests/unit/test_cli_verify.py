"""``certus-assurance verify``: a DSSE-signed in-toto statement checked offline with cryptography.

The bundles here are signed by hand (cryptography only), independently of the service's signing
code, so the CLI is checked against the format rather than against itself."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cli.verify import pae
from tests.support.cli import run_cli

PREDICATE = "https://certus-assurance.dev/attestations/security-scan/v1"
FILES = {"scan.json": b'{"status": "SUCCEEDED"}', "reports/sast/bandit.sarif.json": b'{"version": "2.1.0"}',
         "logs/runner.log": b"line\n"}


def _write_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo))
    return key


def _make_bundle(root: Path, key: ec.EllipticCurvePrivateKey, predicate_type: str = PREDICATE) -> Path:
    bundle = root / "test_0123456789ab"
    for rel, data in FILES.items():
        (bundle / rel).parent.mkdir(parents=True, exist_ok=True)
        (bundle / rel).write_bytes(data)
    statement = {"_type": "https://in-toto.io/Statement/v1",
                 "subject": [{"name": rel, "digest": {"sha256": hashlib.sha256(data).hexdigest()}}
                             for rel, data in FILES.items()],
                 "predicateType": predicate_type, "predicate": {}}
    payload = json.dumps(statement).encode()
    sig = key.sign(pae("application/vnd.in-toto+json", payload), ec.ECDSA(hashes.SHA256()))
    envelope = {"payloadType": "application/vnd.in-toto+json", "payload": base64.b64encode(payload).decode(),
                "signatures": [{"keyid": "", "sig": base64.b64encode(sig).decode()}]}
    att = bundle / "reports/signing/attestation.intoto.json"
    att.parent.mkdir(parents=True, exist_ok=True)
    att.write_text(json.dumps(envelope))
    return bundle


@pytest.fixture()
def signed(tmp_path):
    key = _write_key(tmp_path / "cosign.pub")
    return _make_bundle(tmp_path, key), tmp_path / "cosign.pub"


def test_valid_bundle_verifies(signed):
    bundle, pub = signed
    result = run_cli("verify", str(bundle), "--key", str(pub))
    assert result.code == 0, result.out + result.err
    assert "signature: valid" in result.out and "3 files, 3 match" in result.out and "verified" in result.out


def test_modified_file_fails(signed):
    bundle, pub = signed
    (bundle / "reports/sast/bandit.sarif.json").write_bytes(b'{"version": "2.1.0", "runs": []}')
    result = run_cli("verify", str(bundle), "--key", str(pub), "--json")
    assert result.code == 7
    assert result.json()["mismatched"] == ["reports/sast/bandit.sarif.json"] and not result.json()["verified"]


def test_a_missing_file_fails(signed):
    bundle, pub = signed
    (bundle / "logs/runner.log").unlink()
    result = run_cli("verify", str(bundle), "--key", str(pub))
    assert result.code == 7 and "✗ missing:  logs/runner.log" in result.out and "NOT verified" in result.out


def test_missing_file_and_extra_file(signed):
    bundle, pub = signed
    (bundle / "logs/runner.log").unlink()
    (bundle / "extra.txt").write_text("not signed")
    result = run_cli("verify", str(bundle), "--key", str(pub), "--json")
    assert result.code == 7
    body = result.json()
    assert body["missing"] == ["logs/runner.log"] and body["unattested"] == ["extra.txt"]


def test_a_file_not_covered_by_the_attestation_is_refused_by_default(signed):
    bundle, pub = signed
    (bundle / "extra.txt").write_text("not signed")
    for flags in ((), ("--strict",)):  # --strict is the default and still accepted
        result = run_cli("verify", str(bundle), "--key", str(pub), *flags)
        assert result.code == 7 and "not covered by the attestation: extra.txt" in result.out
        assert "NOT verified" in result.out


def test_a_download_left_over_is_not_ignored(signed):
    bundle, pub = signed
    (bundle / "scan.json.part").write_text("half a download")
    result = run_cli("verify", str(bundle), "--key", str(pub), "--json")
    assert result.code == 7 and result.json()["unattested"] == ["scan.json.part"]


def test_another_predicate_type_is_refused(tmp_path):
    key = _write_key(tmp_path / "cosign.pub")
    bundle = _make_bundle(tmp_path, key, predicate_type="https://slsa.dev/provenance/v1")
    result = run_cli("verify", str(bundle), "--key", str(tmp_path / "cosign.pub"))
    assert result.code == 7
    assert "predicateType is 'https://slsa.dev/provenance/v1'" in result.err and PREDICATE in result.err


def test_a_symlink_in_the_bundle_is_never_followed(signed, tmp_path):
    bundle, pub = signed
    # The link points at a file with exactly the signed content: following it would verify.
    outside = tmp_path / "elsewhere.log"
    outside.write_bytes(FILES["logs/runner.log"])
    (bundle / "logs/runner.log").unlink()
    (bundle / "logs/runner.log").symlink_to(outside)
    result = run_cli("verify", str(bundle), "--key", str(pub))
    assert result.code == 7 and "never followed: logs/runner.log" in result.err


def test_a_symlinked_folder_is_never_followed(signed, tmp_path):
    bundle, pub = signed
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "runner.log").write_bytes(FILES["logs/runner.log"])
    (bundle / "logs/runner.log").unlink()
    (bundle / "logs").rmdir()
    (bundle / "logs").symlink_to(tmp_path / "logs", target_is_directory=True)
    result = run_cli("verify", str(bundle), "--key", str(pub))
    assert result.code == 7 and "never followed: logs" in result.err


def test_a_symlinked_attestation_is_refused(signed, tmp_path):
    bundle, pub = signed
    att = bundle / "reports/signing/attestation.intoto.json"
    moved = tmp_path / "attestation.json"
    att.rename(moved)
    att.symlink_to(moved)
    result = run_cli("verify", str(bundle), "--key", str(pub))
    assert result.code == 7 and "is not a regular file" in result.err


def test_other_key_or_tampered_payload_fails(signed, tmp_path):
    bundle, _pub = signed
    other = tmp_path / "other.pub"
    _write_key(other)
    wrong = run_cli("verify", str(bundle), "--key", str(other))
    assert wrong.code == 7 and "INVALID" in wrong.out
    att = bundle / "reports/signing/attestation.intoto.json"
    envelope = json.loads(att.read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["subject"] = statement["subject"][:1]  # drop subjects without re-signing
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    att.write_text(json.dumps(envelope))
    assert run_cli("verify", str(bundle), "--key", str(_pub)).code == 7


def test_subject_outside_the_bundle_is_refused(tmp_path):
    key = _write_key(tmp_path / "cosign.pub")
    bundle = tmp_path / "b"
    bundle.mkdir()
    statement = {"_type": "https://in-toto.io/Statement/v1",
                 "subject": [{"name": "../cosign.pub", "digest": {"sha256": "0" * 64}}],
                 "predicateType": PREDICATE, "predicate": {}}
    payload = json.dumps(statement).encode()
    sig = key.sign(pae("application/vnd.in-toto+json", payload), ec.ECDSA(hashes.SHA256()))
    (bundle / "att.json").write_text(json.dumps({
        "payloadType": "application/vnd.in-toto+json", "payload": base64.b64encode(payload).decode(),
        "signatures": [{"sig": base64.b64encode(sig).decode()}]}))
    result = run_cli("verify", str(bundle), "--key", str(tmp_path / "cosign.pub"),
                     "--attestation", str(bundle / "att.json"))
    assert result.code == 7 and "outside the bundle" in result.err


def test_bad_key_file_is_a_clean_error(signed, tmp_path):
    bundle, _ = signed
    bad = tmp_path / "bad.pub"
    bad.write_text("not a key")
    result = run_cli("verify", str(bundle), "--key", str(bad))
    assert result.code == 7 and "cannot read a PEM public key" in result.err and "Traceback" not in result.err
