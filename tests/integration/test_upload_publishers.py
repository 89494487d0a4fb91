"""The publishers against real servers: Debian's docker-registry (with and without htpasswd auth),
stock cosign verifying what we pushed, and moto's S3 server for raw -> golden promotion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests.support.cosign import cosign_or_skip, run_cosign
from tests.support.uploads_servers import FaultyProxy, MotoS3, Registry
from workers.signing import attestation, signing_keys
from workers.uploads import datalake, oci
from workers.uploads.errors import PermanentUploadError, TransientUploadError
from workers.uploads.objectstore import S3ObjectStore
from workers.uploads.registry import OCI_MANIFEST, OciLayout, RegistryClient

PASSWORD = "pw-for-tests"  # noqa: S105


@pytest.fixture(scope="module")
def signer(tmp_path_factory) -> signing_keys.Signer:
    directory = tmp_path_factory.mktemp("keys")
    signing_keys.generate_key_pair(directory, PASSWORD)
    return signing_keys.Signer(signing_keys.decrypt_private_key((directory / "cosign.key").read_bytes(), PASSWORD),
                       directory / "cosign.key", directory / "cosign.pub")


@pytest.fixture()
def bundle(tmp_path, signer) -> Path:
    root = tmp_path / "test_0123456789ab"
    (root / "reports" / "sast").mkdir(parents=True)
    (root / "scan.json").write_text(json.dumps({"test_id": root.name, "status": "SUCCEEDED"}))
    (root / "reports" / "sast" / "bandit.sarif.json").write_text('{"version": "2.1.0", "runs": []}')
    (root / "logs").mkdir()
    (root / "logs" / "runner.log").write_text("scan SUCCEEDED\n")
    attestation.attest(root, {"scan": {"test_id": root.name}}, signer)
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    reg = Registry(tmp_path_factory.mktemp("registry")).start()
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory):
    reg = Registry(tmp_path_factory.mktemp("registry-auth"), users={"ci": "s3cret"}).start()
    yield reg
    reg.stop()


def _push(target, bundle, signer):
    return oci.push_bundle(target, files=_files(bundle), tag=bundle.name,
                           annotations={"dev.certus-assurance.test_id": bundle.name,
                                        "org.opencontainers.image.revision": "a" * 40},
                           signer=signer, bundle_attestation=(bundle / attestation.ATTESTATION_PATH).read_bytes())


def test_push_to_registry_is_a_real_oci_artifact_and_idempotent(registry, bundle, signer):
    client = RegistryClient(registry.host, "certus/scans", plain_http=True)
    first = _push(client, bundle, signer)
    again = _push(RegistryClient(registry.host, "certus/scans", plain_http=True), bundle, signer)
    assert again["digest"] == first["digest"]
    base = f"http://{registry.host}/v2/certus/scans"
    resp = requests.get(f"{base}/manifests/{bundle.name}", headers={"Accept": OCI_MANIFEST}, timeout=10)
    assert resp.status_code == 200
    assert resp.headers["Docker-Content-Digest"] == first["digest"]
    manifest = resp.json()
    assert manifest["artifactType"] == oci.ARTIFACT_TYPE
    assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    titles = {layer["annotations"]["org.opencontainers.image.title"]: layer for layer in manifest["layers"]}
    assert set(titles) == set(_files(bundle))
    for name, layer in titles.items():  # every layer is the file itself, by its real digest
        blob = requests.get(f"{base}/blobs/{layer['digest']}", timeout=10)
        assert blob.content == (bundle / name).read_bytes()
    assert manifest["annotations"]["dev.certus-assurance.test_id"] == bundle.name
    # Debian's registry has no referrers API: the fallback tag lists the signature and attestation
    assert first["referrers_fallback_tag"] == "sha256-" + first["digest"].split(":")[1]
    index = requests.get(f"{base}/manifests/{first['referrers_fallback_tag']}",
                         headers={"Accept": "application/vnd.oci.image.index.v1+json"}, timeout=10).json()
    assert len(index["manifests"]) == 2
    assert {m["artifactType"] for m in index["manifests"]} == {oci.SIMPLESIGNING, oci.DSSE_MEDIA_TYPE}


def test_registry_basic_auth(auth_registry, bundle, signer):
    with pytest.raises(PermanentUploadError) as refused:
        _push(RegistryClient(auth_registry.host, "certus/scans", plain_http=True), bundle, signer)
    assert refused.value.code == "registry_auth_required"
    with pytest.raises(PermanentUploadError) as wrong:
        _push(RegistryClient(auth_registry.host, "certus/scans", plain_http=True, username="ci", password="nope"),
              bundle, signer)
    assert wrong.value.code == "registry_auth_failed"
    result = _push(RegistryClient(auth_registry.host, "certus/scans", plain_http=True, username="ci",
                                  password="s3cret"), bundle, signer)
    anonymous = requests.get(f"http://{auth_registry.host}/v2/certus/scans/manifests/{bundle.name}", timeout=10)
    assert anonymous.status_code == 401
    authed = requests.get(f"http://{auth_registry.host}/v2/certus/scans/manifests/{bundle.name}",
                          auth=("ci", "s3cret"), headers={"Accept": OCI_MANIFEST}, timeout=10)
    assert authed.headers["Docker-Content-Digest"] == result["digest"]


def test_registry_down_is_transient(bundle, signer):
    from stack.ports import free_port

    with pytest.raises(TransientUploadError):
        _push(RegistryClient(f"127.0.0.1:{free_port()}", "certus/scans", plain_http=True), bundle, signer)


def test_stock_cosign_verifies_signature_and_attestation(registry, bundle, signer, tmp_path):
    cosign = cosign_or_skip()
    result = _push(RegistryClient(registry.host, "certus/cosign", plain_http=True), bundle, signer)
    ref = f"{registry.host}/certus/cosign@{result['digest']}"
    verify = run_cosign(cosign, "verify", "--key", str(signer.public_key_path), "--insecure-ignore-tlog",
                        "--allow-http-registry", ref, cwd=tmp_path)
    assert verify.returncode == 0, verify.stderr
    payload = json.loads(next(line for line in verify.stdout.splitlines() if line.startswith("[")))
    assert payload[0]["critical"]["image"]["docker-manifest-digest"] == result["digest"]
    att = run_cosign(cosign, "verify-attestation", "--key", str(signer.public_key_path), "--insecure-ignore-tlog",
                     "--allow-http-registry", "--type", attestation.PREDICATE_TYPE, ref, cwd=tmp_path)
    assert att.returncode == 0, att.stderr
    # another key is refused
    other = tmp_path / "other"
    signing_keys.generate_key_pair(other, PASSWORD)
    bad = run_cosign(cosign, "verify", "--key", str(other / "cosign.pub"), "--insecure-ignore-tlog",
                     "--allow-http-registry", ref, cwd=tmp_path)
    assert bad.returncode != 0


def test_oci_layout_when_no_registry(tmp_path, bundle, signer):
    layout = OciLayout(tmp_path / "oci", "certus/scans")
    result = _push(layout, bundle, signer)
    index = json.loads((tmp_path / "oci" / "certus" / "scans" / "index.json").read_text())
    refs = {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"] for m in index["manifests"]}
    assert refs[bundle.name] == result["digest"]
    assert result["signature_tag"] in refs and result["attestation_tag"] in refs
    blob = tmp_path / "oci" / "certus" / "scans" / "blobs" / "sha256" / result["digest"].split(":")[1]
    assert json.loads(blob.read_bytes())["artifactType"] == oci.ARTIFACT_TYPE


# -- S3 ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def moto_s3():
    server = MotoS3().start()
    yield server
    server.stop()


# moto keeps one in-process backend for every server: these buckets are this module's own.
LAYOUT = datalake.Layout("pub-raw", "scans", "pub-golden", "promoted")
META = {"test_id": "t", "workspace_id": "ws", "component_id": "c", "assessment_id": "a", "manifest_digest": "d"}


def _s3_store(url: str) -> S3ObjectStore:
    return S3ObjectStore(endpoint_url=url, region="us-east-1", path_style=True,
                         client=MotoS3.client(None, url))  # type: ignore[arg-type]


def _keys(client, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_s3_promotion_and_half_way_failure(moto_s3, bundle, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    s3 = moto_s3.client()
    for b in (LAYOUT.raw_bucket, LAYOUT.golden_bucket):
        s3.create_bucket(Bucket=b)
    digests = {n: __import__("hashlib").sha256(d).hexdigest() for n, d in _files(bundle).items()}
    proxy = FaultyProxy(moto_s3.port).start()
    try:
        # the second file's staging fails (and keeps failing through botocore's own retries)
        victim = sorted(digests)[1]
        proxy.fail = lambda method, path: method == "PUT" and path.split("?")[0].endswith(victim)
        store = _s3_store(proxy.url)
        with pytest.raises(TransientUploadError):
            datalake.promote(store, LAYOUT, root=bundle, test_id=bundle.name, digests=digests, metadata=META,
                             permit={"upload_permission_id": "perm_1", "verification_proof": {"x": 1}})
        assert _keys(s3, LAYOUT.golden_bucket) == []
        # healed: the re-run finishes, without duplicates
        proxy.fail = lambda method, path: False
        result = datalake.promote(store, LAYOUT, root=bundle, test_id=bundle.name, digests=digests, metadata=META,
                                  permit={"upload_permission_id": "perm_1", "verification_proof": {"x": 1}})
        assert result["staged_now"] == len(digests) - 1
    finally:
        proxy.stop()
    golden = _keys(s3, LAYOUT.golden_bucket)
    expected = sorted(f"promoted/{bundle.name}/golden/{n}" for n in digests)
    assert golden == expected + [f"promoted/{bundle.name}/permit.json",
                                 f"promoted/{bundle.name}/verification-proof.json"]
    for name, digest in digests.items():
        obj = s3.get_object(Bucket=LAYOUT.golden_bucket, Key=f"promoted/{bundle.name}/golden/{name}")
        assert __import__("hashlib").sha256(obj["Body"].read()).hexdigest() == digest
        assert obj["Metadata"]["workspace_id"] == "ws" and obj["Metadata"]["manifest_digest"] == "d"
    raw = _keys(s3, LAYOUT.raw_bucket)
    assert len([k for k in raw if "/incoming/" in k]) == len(digests)
    # a third run changes nothing
    again = datalake.promote(_s3_store(moto_s3.url), LAYOUT, root=bundle, test_id=bundle.name, digests=digests,
                             metadata=META, permit={"upload_permission_id": "perm_1"})
    assert again["staged_now"] == 0 and again["promoted_now"] == 0


def test_s3_tampered_raw_object_is_never_promoted(moto_s3, bundle, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    s3 = moto_s3.client()
    for b in ("pub-raw2", "pub-golden2"):
        s3.create_bucket(Bucket=b)
    layout = datalake.Layout("pub-raw2", "scans", "pub-golden2", "promoted")
    digests = {n: __import__("hashlib").sha256(d).hexdigest() for n, d in _files(bundle).items()}
    digests["scan.json"] = "0" * 64  # what was permitted is not what is there
    with pytest.raises(PermanentUploadError) as err:
        datalake.promote(_s3_store(moto_s3.url), layout, root=bundle, test_id=bundle.name, digests=digests,
                         metadata=META, permit={})
    assert err.value.code == "raw_digest_mismatch"
    assert _keys(s3, "pub-golden2") == []
