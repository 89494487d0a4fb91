"""The signing package: cosign key format, signatures, DSSE and in-toto statements."""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tasks.settings import Settings
from workers.signing import dsse, intoto, signing_keys


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_encrypted_key_round_trip_and_format(key: ec.EllipticCurvePrivateKey) -> None:
    pem = signing_keys.encrypt_private_key(key, "s3cret")
    text = pem.decode()
    assert text.startswith("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    body = json.loads(base64.b64decode("".join(text.strip().splitlines()[1:-1])))
    assert body["kdf"]["name"] == "scrypt" and body["kdf"]["params"] == {"N": 65536, "r": 8, "p": 1}
    assert len(base64.b64decode(body["kdf"]["salt"])) == 32
    assert body["cipher"]["name"] == "nacl/secretbox"
    assert len(base64.b64decode(body["cipher"]["nonce"])) == 24
    loaded = signing_keys.decrypt_private_key(pem, "s3cret")
    assert loaded.private_numbers() == key.private_numbers()


def test_wrong_password_is_refused(key: ec.EllipticCurvePrivateKey) -> None:
    pem = signing_keys.encrypt_private_key(key, "right")
    with pytest.raises(signing_keys.SigningKeyError) as err:
        signing_keys.decrypt_private_key(pem, "wrong")
    assert err.value.code == "key_password_wrong"


def test_other_pem_is_refused(key: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(signing_keys.SigningKeyError) as err:
        signing_keys.decrypt_private_key(signing_keys.public_pem(key), "x")
    assert err.value.code == "key_unreadable"


def test_sign_and_verify(key: ec.EllipticCurvePrivateKey) -> None:
    sig = signing_keys.sign_bytes(key, b"manifest bytes")
    pub = signing_keys.public_pem(key)
    assert signing_keys.verify_bytes(pub, b"manifest bytes", sig)
    assert not signing_keys.verify_bytes(pub, b"manifest bytes!", sig)
    other = signing_keys.public_pem(ec.generate_private_key(ec.SECP256R1()))
    assert not signing_keys.verify_bytes(other, b"manifest bytes", sig)
    assert signing_keys.decode_signature(base64.b64encode(sig).decode() + "\n") == sig
    with pytest.raises(signing_keys.SigningKeyError):
        signing_keys.decode_signature("not base64 !")


def test_generated_key_pair_is_kept_and_shared(tmp_path: Path) -> None:
    settings = Settings(signing_key_dir=str(tmp_path / "keys"))
    env = {"COSIGN_PASSWORD": "pw"}
    results: list[signing_keys.Signer] = []
    def load() -> None:
        results.append(signing_keys.load_signer(settings, env))

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({s.key_id for s in results}) == 1, "racing first runs must agree on one key"
    first = results[0]
    assert first.key_path == tmp_path / "keys" / "cosign.key"
    assert (tmp_path / "keys" / "cosign.pub").read_bytes() == first.public_key_pem
    assert oct((tmp_path / "keys" / "cosign.key").stat().st_mode & 0o777) == "0o600"
    again = signing_keys.load_signer(settings, env)
    assert again.key_id == first.key_id
    assert signing_keys.verify_bytes(again.public_key_pem, b"x", first.sign(b"x"))


def test_configured_key_ref(tmp_path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    (tmp_path / "cosign.key").write_bytes(signing_keys.encrypt_private_key(key, "pw"))
    settings = Settings(cosign_key_ref=f"file://{tmp_path / 'cosign.key'}", signing_key_dir=str(tmp_path / "gen"))
    signer = signing_keys.load_signer(settings, {"COSIGN_PASSWORD": "pw"})
    assert signer.key_id == signing_keys.key_id(key)
    assert not (tmp_path / "gen").exists(), "a configured key must not cause a new one to be generated"
    with pytest.raises(signing_keys.SigningKeyError) as err:
        signing_keys.load_signer(settings, {"COSIGN_PASSWORD": "nope"})
    assert err.value.code == "key_password_wrong"
    (tmp_path / "cosign.pub").write_bytes(signing_keys.public_pem(ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(signing_keys.SigningKeyError) as err:
        signing_keys.load_signer(settings, {"COSIGN_PASSWORD": "pw"})
    assert err.value.code == "key_mismatch"
    missing = Settings(cosign_key_ref=str(tmp_path / "absent.key"))
    with pytest.raises(signing_keys.SigningKeyError) as err:
        signing_keys.load_signer(missing, {"COSIGN_PASSWORD": "pw"})
    assert err.value.code == "key_missing"


def test_pae_matches_the_dsse_spec() -> None:
    assert dsse.pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world")
    assert dsse.pae("", b"") == b"DSSEv1 0  0 "


def test_dsse_sign_verify_and_tamper(key: ec.EllipticCurvePrivateKey) -> None:
    env = dsse.sign(b'{"a":1}', dsse.INTOTO_PAYLOAD_TYPE, key)
    assert env["signatures"][0]["keyid"] == ""
    pub = signing_keys.public_pem(key)
    assert dsse.verify(env, pub).payload == b'{"a":1}'
    assert dsse.verify(json.dumps(env), pub, dsse.INTOTO_PAYLOAD_TYPE).payload_type == dsse.INTOTO_PAYLOAD_TYPE
    forged = dict(env, payload=base64.b64encode(b'{"a":2}').decode())
    with pytest.raises(dsse.EnvelopeError) as err:
        dsse.verify(forged, pub)
    assert err.value.code == "signature_invalid"
    retyped = dict(env, payloadType="text/plain")
    with pytest.raises(dsse.EnvelopeError):
        dsse.verify(retyped, pub)  # the type is covered by the signature too
    with pytest.raises(dsse.EnvelopeError) as err:
        dsse.verify(env, pub, payload_type="text/plain")
    assert err.value.code == "envelope_wrong_type"
    with pytest.raises(dsse.EnvelopeError) as err:
        dsse.verify(dict(env, signatures=[]), pub)
    assert err.value.code == "envelope_malformed"


def test_statement_build_and_read() -> None:
    digest = "a" * 64
    stmt = intoto.statement({"b.json": digest, "a.json": "b" * 64}, "https://example.test/p/v1", {"k": 1})
    assert stmt["_type"] == "https://in-toto.io/Statement/v1"
    assert [s["name"] for s in stmt["subject"]] == ["a.json", "b.json"]
    back = intoto.decode(intoto.encode(stmt))
    assert intoto.subject_digests(back) == {"a.json": "b" * 64, "b.json": digest}
    with pytest.raises(intoto.StatementError):
        intoto.statement({"x": "not-a-digest"}, "t", {})
    with pytest.raises(intoto.StatementError):
        intoto.decode(b'{"_type": "something else"}')
    dup = dict(stmt, subject=stmt["subject"] + stmt["subject"][:1])
    with pytest.raises(intoto.StatementError):
        intoto.subject_digests(dup)


def test_unwritable_key_dir_is_a_signing_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(signing_keys.SigningKeyError) as err:
        signing_keys.load_signer(Settings(signing_key_dir=str(blocker / "keys")), {"COSIGN_PASSWORD": "pw"})
    assert err.value.code == "key_dir_unusable"
