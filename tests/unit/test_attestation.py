"""Bundle attestation: signed over every other file, verified by our command and by stock cosign."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.settings import Settings
from tests.support.cosign import HINT, find_cosign, run_cosign
from workers import verify as verify_cli
from workers.signing import signing_keys
from workers.signing.attestation import ATTESTATION_PATH, PREDICATE_TYPE, attest, verify_bundle

FILES = {
    "scan.json": '{"test_id": "test_0123456789ab"}\n',
    "manifest.json": '{"profiles": []}',
    "reports/sast/bandit.sarif.json": '{"version": "2.1.0"}\n',
    "logs/stream.jsonl": '{"type":"scan_complete"}\n',
}


@pytest.fixture()
def signer(tmp_path: Path) -> signing_keys.Signer:
    return signing_keys.load_signer(Settings(signing_key_dir=str(tmp_path / "keys")), {"COSIGN_PASSWORD": "pw"})


@pytest.fixture()
def bundle(tmp_path: Path, signer: signing_keys.Signer) -> Path:
    root = tmp_path / "test_0123456789ab"
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    attest(root, {"scan": {"test_id": "test_0123456789ab"}}, signer)
    return root


def _cli(bundle: Path, key: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = verify_cli.main([str(bundle), "--key", str(key)])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_statement_covers_every_other_file(bundle: Path, signer: signing_keys.Signer) -> None:
    envelope = json.loads((bundle / ATTESTATION_PATH).read_text())
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    result = verify_bundle(bundle, signer.public_key_pem)
    assert result.ok, result.message
    assert result.statement is not None
    assert sorted(s["name"] for s in result.statement["subject"]) == sorted(FILES)
    assert result.statement["predicateType"] == PREDICATE_TYPE


def test_verify_command_ok(bundle: Path, signer: signing_keys.Signer, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _cli(bundle, signer.public_key_path, capsys)
    assert code == 0 and "Verified OK" in text


@pytest.mark.parametrize("tamper", ["change", "remove", "add", "link", "replace_attestation_key"])
def test_any_change_fails(bundle: Path, signer: signing_keys.Signer, tamper: str, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    if tamper == "change":
        (bundle / "reports/sast/bandit.sarif.json").write_text('{"version": "2.1.0", "runs": []}\n')
        expect = "changed: reports/sast/bandit.sarif.json"
    elif tamper == "remove":
        (bundle / "logs/stream.jsonl").unlink()
        expect = "missing: logs/stream.jsonl"
    elif tamper == "add":
        (bundle / "reports/extra.txt").write_text("sneaked in\n")
        expect = "not covered by the attestation: reports/extra.txt"
    elif tamper == "link":
        # A link to a file with the very same content: following it would verify.
        copy = tmp_path / "copy.json"
        copy.write_text(FILES["scan.json"])
        (bundle / "scan.json").unlink()
        (bundle / "scan.json").symlink_to(copy)
        expect = "symbolic links or special files (never followed): scan.json"
    else:
        # Re-signing the edited bundle with another key does not fool a verifier holding the real key.
        (bundle / "scan.json").write_text('{"test_id": "forged"}\n')
        other = signing_keys.load_signer(Settings(signing_key_dir=str(tmp_path / "other")), {"COSIGN_PASSWORD": "x"})
        attest(bundle, {"scan": {}}, other)
        expect = "signature_invalid"
    result = verify_bundle(bundle, signer.public_key_pem)
    assert not result.ok
    code, text = _cli(bundle, signer.public_key_path, capsys)
    assert code == 1
    assert expect in text


def test_verify_command_errors(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _cli(bundle, tmp_path / "no-such.pub", capsys)
    assert code == 1 and "key_missing" in text
    (bundle / ATTESTATION_PATH).unlink()
    code, text = _cli(bundle, tmp_path / "keys" / "cosign.pub", capsys)
    assert code == 1 and "attestation_missing" in text


def test_stock_cosign_verifies_every_file(bundle: Path, signer: signing_keys.Signer) -> None:
    cosign = find_cosign()
    if cosign is None:
        pytest.skip(HINT)
    att = str(bundle / ATTESTATION_PATH)
    for rel in FILES:
        res = run_cosign(cosign, "verify-blob-attestation", "--key", str(signer.public_key_path),
                         "--insecure-ignore-tlog=true", "--type", PREDICATE_TYPE, "--signature", att, rel, cwd=bundle)
        assert res.returncode == 0, f"{rel}: {res.stderr}"
    (bundle / "scan.json").write_text("{}\n")
    res = run_cosign(cosign, "verify-blob-attestation", "--key", str(signer.public_key_path),
                     "--insecure-ignore-tlog=true", "--type", PREDICATE_TYPE, "--signature", att, "scan.json",
                     cwd=bundle)
    assert res.returncode != 0
