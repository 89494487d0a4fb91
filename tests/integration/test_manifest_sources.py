"""Manifest sources against real servers on loopback, with signatures accepted and rejected for each."""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tasks import manifest as manifests
from tasks.records import ScanRecord
from tasks.settings import Settings
from tests.support.cosign import find_cosign, run_cosign
from tests.support.manifest_servers import AWS_ENV, registry_binary, start_https, start_registry, start_s3
from tests.support.records import scan_record
from workers.pipeline.manifest import resolve_manifest
from workers.pipeline.manifest_sources import ManifestSourceError
from workers.signing import signing_keys

pytestmark = pytest.mark.integration

MANIFEST = (json.dumps({"product": "shop", "version": "1.2", "owners": ["sec@example.test"],
                        "profiles": [{"name": "Team", "tools": ["bandit", {"id": "nosuchtool"}],
                                      "thresholds": {"high": 0}}],
                        "bundle": {"runtimeCeilingMinutes": 5}}, indent=2) + "\n").encode()
WRAPPED = (json.dumps({"manifest": json.loads(MANIFEST)}) + "\n").encode()
KNOWN = {"bandit"}


@pytest.fixture(scope="module")
def signing_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _sig(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    return base64.b64encode(signing_keys.sign_bytes(key, data)) + b"\n"


BAD_SIG = base64.b64encode(b"\x30\x06\x02\x01\x01\x02\x01\x01") + b"\n"


@pytest.fixture(scope="module")
def pub_path(tmp_path_factory: pytest.TempPathFactory, signing_key: ec.EllipticCurvePrivateKey) -> Path:
    path = tmp_path_factory.mktemp("pub") / "cosign.pub"
    path.write_bytes(signing_keys.public_pem(signing_key))
    return path


@pytest.fixture(scope="module")
def s3(signing_key: ec.EllipticCurvePrivateKey):
    saved = {k: os.environ.get(k) for k in AWS_ENV}
    os.environ.update(AWS_ENV)
    server = start_s3()
    client = server.client()
    client.create_bucket(Bucket="manifests")
    client.put_object(Bucket="manifests", Key="team/manifest.json", Body=MANIFEST)
    client.put_object(Bucket="manifests", Key="team/manifest.sig", Body=_sig(signing_key, MANIFEST))
    client.put_object(Bucket="manifests", Key="plain/manifest.json", Body=MANIFEST)
    client.put_object(Bucket="manifests", Key="bad/manifest.json", Body=MANIFEST)
    client.put_object(Bucket="manifests", Key="bad/manifest.sig", Body=BAD_SIG)
    client.put_object(Bucket="manifests", Key="detached/signature.txt", Body=_sig(signing_key, MANIFEST))
    client.put_object(Bucket="manifests", Key="cue/manifest.json", Body=WRAPPED)
    client.put_object(Bucket="manifests", Key="cue/manifest.sig", Body=_sig(signing_key, WRAPPED))
    client.put_object(Bucket="manifests", Key="broken/manifest.json", Body=b"{not json")
    client.put_object(Bucket="manifests", Key="broken/manifest.sig", Body=_sig(signing_key, b"{not json"))
    try:
        yield server
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def https(tmp_path_factory: pytest.TempPathFactory, signing_key: ec.EllipticCurvePrivateKey):
    root = tmp_path_factory.mktemp("www")
    for folder, sig in (("good", _sig(signing_key, MANIFEST)), ("bad", BAD_SIG), ("plain", None)):
        (root / folder).mkdir()
        (root / folder / "manifest.json").write_bytes(MANIFEST)
        if sig:
            (root / folder / "manifest.json.sig").write_bytes(sig)
    server = start_https(root, tmp_path_factory.mktemp("tls"))
    server.redirects["/moved/manifest.json"] = "/good/manifest.json"
    server.redirects["/downgrade/manifest.json"] = f"http://127.0.0.1:{server.url.rsplit(':', 1)[1]}/good/manifest.json"
    try:
        yield server
    finally:
        server.stop()


def _need_registry() -> None:
    if registry_binary() is None:
        pytest.skip("docker-registry is not installed: run scripts/system-deps.sh")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, signing_key: ec.EllipticCurvePrivateKey):
    _need_registry()
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    reg.push_artifact("certus/manifests", "v1", {"manifest.json": MANIFEST,
                                                 "manifest.sig": _sig(signing_key, MANIFEST)})
    reg.push_artifact("certus/manifests", "unsigned", {"manifest.json": MANIFEST})
    reg.push_artifact("certus/manifests", "badsig", {"manifest.json": MANIFEST, "manifest.sig": BAD_SIG})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("manifest.json", MANIFEST), ("manifest.sig", _sig(signing_key, MANIFEST)),
                           ("etc/other.txt", b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    reg.push_image("certus/image", "1.0", gzip.compress(buf.getvalue()))
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory, signing_key: ec.EllipticCurvePrivateKey):
    _need_registry()
    reg = start_registry(tmp_path_factory.mktemp("registry-auth"), auth=("puller", "pull-secret"))
    reg.push_artifact("private/manifests", "v1", {"manifest.json": MANIFEST,
                                                  "manifest.sig": _sig(signing_key, MANIFEST)})
    try:
        yield reg
    finally:
        reg.stop()


def _settings(pub: Path, **kw) -> Settings:
    base = Settings(manifest_verification_key_ref=str(pub), manifest_verification_required=True,
                    manifest_allowed_hosts=("127.0.0.1",))
    return replace(base, **kw)


def _record(**kw: object) -> ScanRecord:
    return scan_record(profile="team", **kw)


def _resolve(settings: Settings, source_dir: Path | None = None, **kw):
    return resolve_manifest(_record(**kw), settings, source_dir, known_tools=KNOWN)


def _code(settings: Settings, source_dir: Path | None = None, **kw) -> str:
    with pytest.raises(ManifestSourceError) as err:
        _resolve(settings, source_dir, **kw)
    return err.value.code


# -- inline -------------------------------------------------------------------------------------
def test_inline_signed_unsigned_and_bad(pub_path: Path, signing_key: ec.EllipticCurvePrivateKey) -> None:
    obj = json.loads(MANIFEST)
    canonical = manifests.inline_text(obj).encode()
    sig = _sig(signing_key, canonical).decode().strip()
    resolved = _resolve(_settings(pub_path), manifest=obj, manifest_signature=sig)
    assert resolved.signature_verified and resolved.source == "inline"
    assert resolved.data == canonical and resolved.digest == manifests.digest(canonical)
    assert _code(_settings(pub_path), manifest=obj) == "manifest_signature_missing"
    assert _code(_settings(pub_path), manifest=obj, manifest_signature=BAD_SIG.decode()) == "manifest_signature_invalid"
    other = dict(obj, version="9.9")  # the signature covers the content
    assert _code(_settings(pub_path), manifest=other, manifest_signature=sig) == "manifest_signature_invalid"
    optional = _resolve(_settings(pub_path, manifest_verification_required=False), manifest=obj)
    assert not optional.signature_verified and optional.signature is None


# -- manifest_path --------------------------------------------------------------------------------
@pytest.fixture()
def tree(tmp_path: Path, signing_key: ec.EllipticCurvePrivateKey) -> Path:
    src = tmp_path / "src"
    (src / "security").mkdir(parents=True)
    (src / "security" / "manifest.json").write_bytes(MANIFEST)
    (src / "security" / "manifest.sig").write_bytes(_sig(signing_key, MANIFEST))
    (src / "unsigned.json").write_bytes(MANIFEST)
    outside = tmp_path / "outside.json"
    outside.write_bytes(MANIFEST)
    (tmp_path / "outside.json.sig").write_bytes(_sig(signing_key, MANIFEST))
    (src / "escape.json").symlink_to(outside)
    (src / "inside-link.json").symlink_to(src / "security" / "manifest.json")
    (src / "linkdir").symlink_to(tmp_path)
    return src


def test_manifest_path_confined_and_verified(tree: Path, pub_path: Path) -> None:
    settings = _settings(pub_path)
    resolved = _resolve(settings, tree, manifest_path="security/manifest.json")
    assert resolved.signature_verified and resolved.data == MANIFEST
    assert resolved.signature_location == "security/manifest.sig"
    assert resolved.profile_resolved == "manifest:Team" and resolved.tools == ["bandit", "nosuchtool"]
    assert resolved.unsupported == ["nosuchtool"] and resolved.ceiling_minutes == 5
    for bad in ("../outside.json", "/etc/passwd", "security/../../outside.json", "escape.json",
                "linkdir/outside.json", "linkdir/src/security/manifest.json"):
        assert _code(settings, tree, manifest_path=bad) == "manifest_path_invalid", bad
    assert _code(settings, tree, manifest_path="nope.json") == "manifest_not_found"
    assert _code(settings, tree, manifest_path="unsigned.json") == "manifest_signature_missing"
    (tree / "security" / "manifest.sig").write_bytes(BAD_SIG)
    assert _code(settings, tree, manifest_path="security/manifest.json") == "manifest_signature_invalid"
    # A link that stays inside the tree is fine (its own signature lies beside the link's name).
    relaxed = _settings(pub_path, manifest_verification_required=False)
    assert _resolve(relaxed, tree, manifest_path="inside-link.json").data == MANIFEST


# -- s3:// ----------------------------------------------------------------------------------------
def test_s3_sources(s3, pub_path: Path) -> None:
    settings = _settings(pub_path, s3_endpoint_url=s3.url, manifest_s3_allowed=("manifests",))
    ok = _resolve(settings, manifest_uri="s3://manifests/team/manifest.json")
    assert ok.signature_verified and ok.data == MANIFEST and ok.source == "s3"
    assert ok.signature_location == "s3://manifests/team/manifest.sig"
    detached = _resolve(settings, manifest_uri="s3://manifests/plain/manifest.json",
                        manifest_signature_uri="s3://manifests/detached/signature.txt")
    assert detached.signature_verified
    cue = _resolve(settings, manifest_uri="s3://manifests/cue/manifest.json")
    assert cue.parsed is not None and cue.parsed.product == "shop" and cue.data == WRAPPED
    assert _code(settings, manifest_uri="s3://manifests/plain/manifest.json") == "manifest_signature_missing"
    assert _code(settings, manifest_uri="s3://manifests/bad/manifest.json") == "manifest_signature_invalid"
    assert _code(settings, manifest_uri="s3://manifests/none/manifest.json") == "manifest_not_found"
    with pytest.raises(manifests.ManifestInvalid):
        _resolve(settings, manifest_uri="s3://manifests/broken/manifest.json")
    small = replace(settings, manifest_max_bytes=16)
    assert _code(small, manifest_uri="s3://manifests/team/manifest.json") == "manifest_too_large"


# -- https:// -------------------------------------------------------------------------------------
def test_https_sources(https, pub_path: Path) -> None:
    settings = _settings(pub_path, manifest_ca_bundle=str(https.ca))
    ok = _resolve(settings, manifest_uri=f"{https.url}/good/manifest.json")
    assert ok.signature_verified and ok.source == "https"
    assert ok.signature_location == f"{https.url}/good/manifest.json.sig"
    # Redirects are followed (https only); the signature is looked up beside the URI as given.
    moved = _resolve(settings, manifest_uri=f"{https.url}/moved/manifest.json",
                     manifest_signature_uri=f"{https.url}/good/manifest.json.sig")
    assert moved.data == MANIFEST and moved.signature_verified
    assert _code(settings, manifest_uri=f"{https.url}/bad/manifest.json") == "manifest_signature_invalid"
    assert _code(settings, manifest_uri=f"{https.url}/plain/manifest.json") == "manifest_signature_missing"
    assert _code(settings, manifest_uri=f"{https.url}/nothing/manifest.json") == "manifest_not_found"
    assert _code(settings, manifest_uri=f"{https.url}/downgrade/manifest.json") == "manifest_uri_not_allowed"
    # TLS is verified: without the test CA the server is not trusted.
    assert _code(replace(settings, manifest_ca_bundle=""),
                 manifest_uri=f"{https.url}/good/manifest.json") == "manifest_tls_error"
    # Loopback is refused unless the host is allowed (no SSRF into the service's own network).
    assert _code(replace(settings, manifest_allowed_hosts=()),
                 manifest_uri=f"{https.url}/good/manifest.json") == "manifest_uri_not_allowed"


# -- oci:// ---------------------------------------------------------------------------------------
def test_oci_sources(registry, pub_path: Path) -> None:
    settings = _settings(pub_path, manifest_oci_plain_http=(registry.host,))
    ok = _resolve(settings, manifest_uri=f"oci://{registry.host}/certus/manifests:v1")
    assert ok.signature_verified and ok.data == MANIFEST and ok.source == "oci"
    image = _resolve(settings, manifest_uri=f"oci://{registry.host}/certus/image:1.0")
    assert image.signature_verified and image.data == MANIFEST
    digest = registry.push_artifact("certus/manifests", "again", {"manifest.json": MANIFEST,
                                                                   "manifest.sig": ok.signature or b""})
    assert _resolve(settings, manifest_uri=f"oci://{registry.host}/certus/manifests@{digest}").signature_verified
    assert _code(settings, manifest_uri=f"oci://{registry.host}/certus/manifests:unsigned") == \
        "manifest_signature_missing"
    assert _code(settings, manifest_uri=f"oci://{registry.host}/certus/manifests:badsig") == \
        "manifest_signature_invalid"
    assert _code(settings, manifest_uri=f"oci://{registry.host}/certus/manifests:absent") == "manifest_not_found"
    bad_digest = "sha256:" + "0" * 64
    assert _code(settings, manifest_uri=f"oci://{registry.host}/certus/manifests@{bad_digest}") == \
        "manifest_not_found"


def test_oci_basic_auth(auth_registry, pub_path: Path) -> None:
    uri = f"oci://{auth_registry.host}/private/manifests:v1"
    anonymous = _settings(pub_path, manifest_oci_plain_http=(auth_registry.host,))
    assert _code(anonymous, manifest_uri=uri) == "manifest_auth_required"
    listed = replace(anonymous, manifest_oci_credential_hosts=(auth_registry.host,))
    wrong = replace(listed, manifest_oci_username="puller", manifest_oci_password="wrong")
    assert _code(wrong, manifest_uri=uri) == "manifest_fetch_failed"
    right = replace(listed, manifest_oci_username="puller", manifest_oci_password="pull-secret")
    assert _resolve(right, manifest_uri=uri).signature_verified
    # Credentials configured for no registry are sent to none: this one is asked anonymously.
    unbound = replace(right, manifest_oci_credential_hosts=())
    assert _code(unbound, manifest_uri=uri) == "manifest_auth_required"


# -- file:// --------------------------------------------------------------------------------------
def test_file_uri_only_under_allowed_roots(tmp_path: Path, pub_path: Path,
                                           signing_key: ec.EllipticCurvePrivateKey) -> None:
    (tmp_path / "allowed").mkdir()
    (tmp_path / "allowed" / "manifest.json").write_bytes(MANIFEST)
    (tmp_path / "allowed" / "manifest.sig").write_bytes(_sig(signing_key, MANIFEST))
    uri = f"file://{tmp_path / 'allowed' / 'manifest.json'}"
    assert _code(_settings(pub_path), manifest_uri=uri) == "manifest_uri_not_allowed"
    allowed = _settings(pub_path, manifest_file_roots=(str(tmp_path / "allowed"),))
    assert _resolve(allowed, manifest_uri=uri).signature_verified
    (tmp_path / "other.json").write_bytes(MANIFEST)
    assert _code(allowed, manifest_uri=f"file://{tmp_path / 'other.json'}") == "manifest_uri_not_allowed"
    assert _code(allowed, manifest_uri=f"file://{tmp_path / 'allowed' / '..' / 'other.json'}") == \
        "manifest_uri_not_allowed"


# -- stock cosign signs, we verify ----------------------------------------------------------------
def test_cosign_sign_blob_signature_accepted(tmp_path: Path, s3) -> None:
    cosign = find_cosign()
    if cosign is None:
        pytest.skip("stock cosign not found (scripts/get-cosign.sh, or CERTUS_COSIGN_DIR)")
    assert run_cosign(cosign, "generate-key-pair", cwd=tmp_path, password="pw").returncode == 0
    (tmp_path / "manifest.json").write_bytes(MANIFEST)
    res = run_cosign(cosign, "sign-blob", "--key", "cosign.key", "--tlog-upload=false", "--yes",
                     "--output-signature", "manifest.sig", "manifest.json", cwd=tmp_path, password="pw")
    assert res.returncode == 0, res.stderr
    client = s3.client()
    client.put_object(Bucket="manifests", Key="cosigned/manifest.json", Body=MANIFEST)
    client.put_object(Bucket="manifests", Key="cosigned/manifest.sig", Body=(tmp_path / "manifest.sig").read_bytes())
    settings = _settings(tmp_path / "cosign.pub", s3_endpoint_url=s3.url, manifest_s3_allowed=("manifests",))
    assert _resolve(settings, manifest_uri="s3://manifests/cosigned/manifest.json").signature_verified
    # The same signature under our test key (another key) is refused.
    client.put_object(Bucket="manifests", Key="cosigned/manifest.json", Body=MANIFEST + b" ")
    assert _code(settings, manifest_uri="s3://manifests/cosigned/manifest.json") == "manifest_signature_invalid"


def test_oci_bearer_token_auth(tmp_path_factory: pytest.TempPathFactory, pub_path: Path,
                               signing_key: ec.EllipticCurvePrivateKey) -> None:
    """A registry behind a token service: anonymous pulls are refused, a user's pull token works."""
    _need_registry()
    from tests.support.manifest_servers import start_token_server

    workdir = tmp_path_factory.mktemp("registry-token")
    # Fill the registry's storage while it is open, then serve the same storage behind token auth.
    open_reg = start_registry(workdir)
    open_reg.push_artifact("private/manifests", "v1", {"manifest.json": MANIFEST,
                                                       "manifest.sig": _sig(signing_key, MANIFEST)})
    port = int(open_reg.host.rsplit(":", 1)[1])
    open_reg.stop()
    tokens = start_token_server(workdir / "token", {"puller": "pull-secret"})
    reg = start_registry(workdir, token=tokens, port=port)
    try:
        uri = f"oci://{reg.host}/private/manifests:v1"
        anonymous = _settings(pub_path, manifest_oci_plain_http=(reg.host,))
        assert _code(anonymous, manifest_uri=uri) == "manifest_auth_required"
        # The token service runs on another port: it receives the registry's credentials only when listed.
        realm = tokens.url.split("/")[2]
        listed = replace(anonymous, manifest_oci_credential_hosts=(reg.host,), manifest_oci_token_realms=(realm,))
        assert _code(replace(listed, manifest_oci_username="puller", manifest_oci_password="bad"),
                     manifest_uri=uri) == "manifest_fetch_failed"
        right = replace(listed, manifest_oci_username="puller", manifest_oci_password="pull-secret")
        assert _code(replace(right, manifest_oci_token_realms=()), manifest_uri=uri) == \
            "manifest_token_realm_not_allowed"
        resolved = _resolve(right, manifest_uri=uri)
        assert resolved.signature_verified and resolved.data == MANIFEST
        assert {"user": "puller", "access": [{"type": "repository", "name": "private/manifests",
                                              "actions": ["pull"]}]} in tokens.issued
    finally:
        reg.stop()
        tokens.stop()
