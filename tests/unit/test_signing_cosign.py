"""Interoperability with stock cosign: our keys work in cosign, cosign's keys work here.

Skips (saying how to get cosign) when the binary is not available.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tasks.settings import Settings
from tests.support.cosign import cosign_or_skip, run_cosign
from workers.signing import signing_keys


@pytest.fixture(scope="module")
def cosign() -> str:
    return cosign_or_skip()


def test_our_key_signs_with_cosign_and_we_verify(cosign: str, tmp_path: Path) -> None:
    signer = signing_keys.load_signer(Settings(signing_key_dir=str(tmp_path)), {"COSIGN_PASSWORD": "pw-ours"})
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"some bytes to sign\n")
    res = run_cosign(cosign, "sign-blob", "--key", str(signer.key_path), "--tlog-upload=false", "--yes",
                     "--output-signature", "blob.sig", "blob.bin", cwd=tmp_path, password="pw-ours")
    assert res.returncode == 0, res.stderr
    sig = signing_keys.decode_signature((tmp_path / "blob.sig").read_text())
    assert signing_keys.verify_bytes(signer.public_key_pem, blob.read_bytes(), sig)
    assert not signing_keys.verify_bytes(signer.public_key_pem, b"other bytes", sig)
    # And cosign accepts what we sign, with the cosign.pub we wrote.
    (tmp_path / "ours.sig").write_text(signer.sign_base64(blob.read_bytes()))
    res = run_cosign(cosign, "verify-blob", "--key", str(signer.public_key_path), "--insecure-ignore-tlog=true",
                     "--signature", "ours.sig", "blob.bin", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "Verified OK" in res.stderr + res.stdout


def test_cosign_generated_key_loads_here(cosign: str, tmp_path: Path) -> None:
    res = run_cosign(cosign, "generate-key-pair", cwd=tmp_path, password="pw-theirs")
    assert res.returncode == 0, res.stderr
    settings = Settings(cosign_key_ref=str(tmp_path / "cosign.key"), signing_key_dir=str(tmp_path / "unused"))
    signer = signing_keys.load_signer(settings, {"COSIGN_PASSWORD": "pw-theirs"})
    assert signer.public_key_pem.strip() == (tmp_path / "cosign.pub").read_bytes().strip()
    with pytest.raises(signing_keys.SigningKeyError):
        signing_keys.load_signer(settings, {"COSIGN_PASSWORD": "wrong"})
    blob = tmp_path / "data.txt"
    blob.write_text("hello\n")
    (tmp_path / "data.sig").write_text(base64.b64encode(signer.sign(blob.read_bytes())).decode())
    res = run_cosign(cosign, "verify-blob", "--key", "cosign.pub", "--insecure-ignore-tlog=true",
                     "--signature", "data.sig", "data.txt", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    blob.write_text("tampered\n")
    res = run_cosign(cosign, "verify-blob", "--key", "cosign.pub", "--insecure-ignore-tlog=true",
                     "--signature", "data.sig", "data.txt", cwd=tmp_path)
    assert res.returncode != 0
