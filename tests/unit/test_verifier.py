"""``tasks.bundle_verifier``: the one bundle verifier the workers and the CLI share.

Bundles are attested with the service's own signing code (``workers.signing.attestation.attest``)
and checked with the shared verifier, each refusal with its stable code."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tasks import bundle_verifier as bv
from workers.signing import dsse, intoto, signing_keys
from workers.signing.attestation import attest

FILES = {
    "scan.json": b'{"test_id": "test_0123456789ab"}\n',
    "reports/sast/bandit.sarif.json": b'{"version": "2.1.0"}\n',
    "logs/runner.log": b"scan SUCCEEDED\n",
}


@pytest.fixture()
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture()
def bundle(tmp_path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    root = tmp_path / "test_0123456789ab"
    for rel, data in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    attest(root, {"scan": {}}, key)  # type: ignore[arg-type]
    return root


def _verify(bundle: Path, key: ec.EllipticCurvePrivateKey) -> bv.BundleVerification:
    return bv.verify_bundle(bundle, key.public_key())


def _resign(bundle: Path, key: ec.EllipticCurvePrivateKey, statement: dict) -> None:
    envelope = dsse.sign(intoto.encode(statement), bv.INTOTO_PAYLOAD_TYPE, key)
    (bundle / bv.ATTESTATION_PATH).write_text(json.dumps(envelope))


def test_an_untouched_bundle_verifies(bundle: Path, key: ec.EllipticCurvePrivateKey) -> None:
    result = _verify(bundle, key)
    assert result.ok and result.code is None and result.checked == 3
    assert result.predicate_type == bv.PREDICATE_TYPE
    assert result.message == "signature valid; all 3 files match the attestation"


def test_wrong_predicate_type(bundle: Path, key: ec.EllipticCurvePrivateKey) -> None:
    subjects = {rel: bv.sha256_file(bundle / rel) for rel in FILES}
    _resign(bundle, key, intoto.statement(subjects, "https://slsa.dev/provenance/v1", {}))
    result = _verify(bundle, key)
    assert not result.ok and result.code == "attestation_wrong_type" and result.signature_ok
    assert "https://slsa.dev/provenance/v1" in result.message


def test_a_symlink_with_the_signed_content_is_refused(bundle: Path, key: ec.EllipticCurvePrivateKey,
                                                      tmp_path: Path) -> None:
    outside = tmp_path / "runner.log"
    outside.write_bytes(FILES["logs/runner.log"])
    (bundle / "logs/runner.log").unlink()
    (bundle / "logs/runner.log").symlink_to(outside)
    result = _verify(bundle, key)
    assert not result.ok and result.code == "bundle_modified"
    assert result.links == ["logs/runner.log"] and result.missing == [] and result.changed == []
    assert "never followed): logs/runner.log" in result.message


def test_a_symlinked_folder_is_not_walked(bundle: Path, key: ec.EllipticCurvePrivateKey, tmp_path: Path) -> None:
    real = tmp_path / "real-logs"
    (bundle / "logs").rename(real)
    (bundle / "logs").symlink_to(real, target_is_directory=True)
    result = _verify(bundle, key)
    assert not result.ok and result.links == ["logs"] and result.missing == ["logs/runner.log"]


@pytest.mark.timeout(30)
def test_a_fifo_is_never_opened(bundle: Path, key: ec.EllipticCurvePrivateKey) -> None:
    (bundle / "logs/runner.log").unlink()
    os.mkfifo(bundle / "logs/runner.log")  # opening it to hash it would block forever
    result = _verify(bundle, key)
    assert not result.ok and result.links == ["logs/runner.log"]


def test_a_symlinked_attestation_is_not_read(bundle: Path, key: ec.EllipticCurvePrivateKey, tmp_path: Path) -> None:
    att = bundle / bv.ATTESTATION_PATH
    att.rename(tmp_path / "att.json")
    att.symlink_to(tmp_path / "att.json")
    result = _verify(bundle, key)
    assert not result.ok and result.code == "attestation_missing"


def test_an_extra_file_is_refused(bundle: Path, key: ec.EllipticCurvePrivateKey) -> None:
    (bundle / "reports/sast/extra.sarif.json").write_text("{}")
    result = _verify(bundle, key)
    assert not result.ok and result.code == "bundle_modified"
    assert result.unexpected == ["reports/sast/extra.sarif.json"]
    assert result.message == "not covered by the attestation: reports/sast/extra.sarif.json"


def test_a_missing_file_is_refused(bundle: Path, key: ec.EllipticCurvePrivateKey) -> None:
    (bundle / "scan.json").unlink()
    result = _verify(bundle, key)
    assert not result.ok and result.code == "bundle_modified" and result.missing == ["scan.json"]


def test_a_digest_mismatch_is_refused(bundle: Path, key: ec.EllipticCurvePrivateKey) -> None:
    (bundle / "scan.json").write_bytes(b'{"test_id": "forged"}\n')
    result = _verify(bundle, key)
    assert not result.ok and result.code == "bundle_modified" and result.changed == ["scan.json"]


def test_another_key_is_refused_before_anything_is_read(bundle: Path, key: ec.EllipticCurvePrivateKey) -> None:
    (bundle / "scan.json").unlink()
    result = _verify(bundle, ec.generate_private_key(ec.SECP256R1()))
    assert not result.ok and result.code == "signature_invalid" and not result.signature_ok
    assert result.missing == [] and result.statement is None


def test_a_subject_outside_the_bundle_is_refused(bundle: Path, key: ec.EllipticCurvePrivateKey) -> None:
    subjects = {rel: bv.sha256_file(bundle / rel) for rel in FILES}
    for name in ("../outside", "/etc/passwd", "logs//runner.log", "./scan.json"):
        _resign(bundle, key, intoto.statement({**subjects, name: "0" * 64}, bv.PREDICATE_TYPE, {}))
        result = _verify(bundle, key)
        assert not result.ok and result.code == "statement_malformed" and "outside the bundle" in result.message


def test_envelope_refusals(bundle: Path, key: ec.EllipticCurvePrivateKey) -> None:
    att = bundle / bv.ATTESTATION_PATH
    envelope = json.loads(att.read_text())
    att.write_text(json.dumps({**envelope, "payloadType": "text/plain"}))
    assert _verify(bundle, key).code == "envelope_wrong_type"
    att.write_text("not json")
    assert _verify(bundle, key).code == "envelope_malformed"
    payload = json.loads(base64.b64decode(envelope["payload"]))
    payload["subject"].append(dict(payload["subject"][0]))
    _resign(bundle, key, payload)
    assert _verify(bundle, key).code == "statement_malformed"  # a subject named twice


def test_url_safe_base64_signatures_verify(bundle: Path, key: ec.EllipticCurvePrivateKey) -> None:
    att = bundle / bv.ATTESTATION_PATH
    envelope = json.loads(att.read_text())
    sig = base64.b64decode(envelope["signatures"][0]["sig"])
    envelope["signatures"][0]["sig"] = base64.urlsafe_b64encode(sig).decode().rstrip("=")
    att.write_text(json.dumps(envelope))
    assert _verify(bundle, key).ok


def test_key_loading_codes(tmp_path: Path) -> None:
    with pytest.raises(bv.VerifyError) as err:
        bv.load_public_key(b"not a key")
    assert err.value.code == "key_unreadable"
    p384 = signing_keys.public_pem(ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(bv.VerifyError) as err:
        bv.load_public_key(p384)
    assert err.value.code == "key_unsupported"


def test_sha256_file_refuses_a_link(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    (tmp_path / "l").symlink_to(tmp_path / "f")
    assert bv.sha256_file(tmp_path / "f") == "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
    with pytest.raises(OSError):
        bv.sha256_file(tmp_path / "l")
