"""Upload requests end to end: API -> uploads.verify -> Trust -> uploads.publish (S3, OCI), on real
servers: Redis, Celery workers, the standalone Trust service over TLS, moto's S3 server and Debian's
docker-registry with htpasswd auth."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
import requests

from tasks.records import ScanRecord
from tests.support.cosign import find_cosign, run_cosign
from tests.support.service import Service, base_env
from tests.support.uploads_servers import FaultyProxy, MotoS3, Registry, TrustServer, wait_for
from tests.support.ws import read_stream
from workers.signing import signing_keys
from workers.signing.attestation import ATTESTATION_PATH
from workers.uploads.trust import RemoteTrustClient, build_request

pytestmark = pytest.mark.integration
PASSWORD = "test-signing-password"  # noqa: S105 - base_env's COSIGN_PASSWORD
FINAL = ("uploaded", "denied", "upload_failed")


def _scan(svc: Service, repo: dict[str, str]) -> str:
    resp = svc.submit(git_url=repo["url"], profile="smoke")
    assert resp.status_code == 202, resp.text
    test_id = resp.json()["test_id"]
    record = svc.wait_done(test_id, timeout=240)
    assert record["status"] == "SUCCEEDED", record
    return test_id


def _request(svc: Service, test_id: str, **body):
    return svc.http.post(svc.url(f"/v1/security-scans/{test_id}/upload-request"), json=body, timeout=10)


def _wait_upload(svc: Service, test_id: str) -> dict:
    return wait_for(lambda: (r := svc.status(test_id))["upload_status"] in FINAL and r, timeout=240)  # type: ignore[return-value]


def _attested(bundle: Path) -> dict[str, str]:
    envelope = json.loads((bundle / ATTESTATION_PATH).read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    return {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}


def _own_db(redis_url: str, db: int) -> str:
    """Each service of this module gets its own Redis database, so its workers never take the other's tasks."""
    parts = urlsplit(redis_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


def _start(svc: Service) -> Service:
    svc.start_worker("u1", concurrency=2)
    svc.start_api()

    def worker_online() -> bool:
        try:  # a loaded machine may be slow to answer the first requests
            return svc.http.get(svc.url("/stats"), timeout=30).json()["workers_online"] >= 1
        except requests.RequestException:
            return False

    wait_for(worker_online, timeout=120)
    return svc


# -- embedded Trust, default filesystem stores ------------------------------------------------------
@pytest.fixture(scope="module")
def embedded(tmp_path_factory, redis_url):
    tmp = tmp_path_factory.mktemp("uploads-embedded")
    svc = Service(env=base_env(tmp, _own_db(redis_url, 3), CERTUS_ASSURANCE_DATALAKE_ROOT=str(tmp / "datalake"),
                               CERTUS_ASSURANCE_OCI_LAYOUT_ROOT=str(tmp / "oci"),
                               CERTUS_ASSURANCE_TRUST_KEY_DIR=str(tmp / "trust"),
                               CERTUS_ASSURANCE_UPLOAD_RETRY_BACKOFF="1"), workdir=tmp)
    try:
        yield _start(svc)
    finally:
        svc.stop()


def test_embedded_trust_uploads_to_golden_and_oci_layout(embedded, vulnerable_repo):
    svc = embedded
    redis_client = redis.Redis.from_url(svc.env["CERTUS_ASSURANCE_REDIS_URL"], decode_responses=True)
    test_id = _scan(svc, vulnerable_repo)
    complete_id = svc.http.get(svc.url(f"/v1/security-scans/{test_id}/events"), params={"limit": 1000}
                               ).json()["events"][-1]["id"]
    before = {k: int(v) for k, v in redis_client.hgetall("ca:uploads:counts").items()}

    resp = _request(svc, test_id)
    assert resp.status_code == 202, resp.text
    assert resp.json()["upload_status"] == "pending"
    # a watcher that connects after scan_complete follows the upload to its end
    stream = read_stream(svc.ws_url(f"/v1/security-scans/{test_id}/stream?after={complete_id}"),
                         headers=svc.ws_headers, timeout=240)
    assert stream.close_code == 1000
    assert set(stream.types) == {"upload"}
    statuses = [e["upload_status"] for e in stream.events]
    assert statuses[0] == "pending" and statuses[-1] == "uploaded" and "permitted" in statuses

    record = _wait_upload(svc, test_id)
    assert record["upload_status"] == "uploaded", record
    assert record["upload_permission_id"].startswith("perm_")
    proof = record["verification_proof"]["statement"]
    assert proof["scan_id"] == test_id and proof["tier"] == "verified"
    assert set(record["remote_artifacts"]) == {"s3", "oci"}

    bundle = svc.artifact_root / test_id
    attested = _attested(bundle)
    golden = Path(svc.env["CERTUS_ASSURANCE_DATALAKE_ROOT"]) / "certus-golden" / "security-scans" / test_id
    for name, digest in attested.items():
        assert hashlib.sha256((golden / "golden" / name).read_bytes()).hexdigest() == digest
    assert json.loads((golden / "permit.json").read_text())["upload_permission_id"] == record["upload_permission_id"]
    assert (golden / "verification-proof.json").is_file()
    index = json.loads((Path(svc.env["CERTUS_ASSURANCE_OCI_LAYOUT_ROOT"]) / "certus" / "security-scans"
                        / "index.json").read_text())
    refs = {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"] for m in index["manifests"]}
    assert refs[test_id] == record["remote_artifacts"]["oci"]["digest"]
    # scan.json keeps its signed content; the outcome is recorded beside the bundle
    assert hashlib.sha256((bundle / "scan.json").read_bytes()).hexdigest() == attested["scan.json"]
    outcome = json.loads((svc.artifact_root / f"{test_id}.upload.json").read_text())
    assert outcome["upload_status"] == "uploaded"
    after = {k: int(v) for k, v in redis_client.hgetall("ca:uploads:counts").items()}
    assert after.get("uploaded", 0) == before.get("uploaded", 0) + 1
    stats = svc.http.get(svc.url("/stats")).json()
    assert stats["uploads"]["uploaded"] >= 1

    # a new request after the end is a new upload, idempotent by digest
    again = _request(svc, test_id, tier="basic")
    assert again.status_code == 202 and again.json()["upload_request_id"] != resp.json()["upload_request_id"]
    record2 = _wait_upload(svc, test_id)
    assert record2["upload_status"] == "uploaded"
    assert record2["remote_artifacts"]["oci"]["digest"] == record["remote_artifacts"]["oci"]["digest"]


def test_tampered_bundle_is_denied_and_nothing_reaches_golden(embedded, vulnerable_repo):
    svc = embedded
    test_id = _scan(svc, vulnerable_repo)
    (svc.artifact_root / test_id / "summary.json").write_text('{"total": 0}\n')
    assert _request(svc, test_id).status_code == 202
    record = _wait_upload(svc, test_id)
    assert record["upload_status"] == "denied"
    assert record["upload_reason"].startswith("artifact_mismatch") and "summary.json" in record["upload_reason"]
    assert record["upload_permission_id"] is None
    golden = Path(svc.env["CERTUS_ASSURANCE_DATALAKE_ROOT"]) / "certus-golden" / "security-scans" / test_id
    assert not golden.exists()
    events = svc.http.get(svc.url(f"/v1/security-scans/{test_id}/events"), params={"limit": 1000}).json()["events"]
    assert events[-1]["type"] == "upload" and events[-1]["upload_status"] == "denied"


def test_upload_request_errors(embedded, vulnerable_repo):
    svc = embedded
    resp = _request(svc, "test_000000000000")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "scan_not_found"
    failed = svc.submit(git_url=vulnerable_repo["url"], branch="no-such-branch", profile="smoke").json()["test_id"]
    assert svc.wait_done(failed)["status"] == "FAILED"
    resp = _request(svc, failed)
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "scan_not_succeeded"
    resp = _request(svc, failed, tier="platinum")
    assert resp.status_code == 422 and "tier" in resp.json()["error"]["fields"]
    resp = _request(svc, failed, signer="bad signer!")
    assert resp.status_code == 422 and "signer" in resp.json()["error"]["fields"]


# -- remote Trust service, moto S3, docker-registry with auth ---------------------------------------
@pytest.fixture(scope="module")
def remote(tmp_path_factory, redis_url):
    tmp = tmp_path_factory.mktemp("uploads-remote")
    signing_keys.generate_key_pair(tmp / "keys", PASSWORD)  # the worker's key; the Trust is given its public half
    moto = MotoS3().start()
    proxy = FaultyProxy(moto.port).start()  # passes everything through unless a test says otherwise
    registry = Registry(tmp / "registry", users={"ci": "s3cret"}).start()
    trust = TrustServer(tmp / "trust", {"certus-assurance": tmp / "keys" / "cosign.pub"}).start()
    s3 = moto.client()
    for bucket in ("flow-raw", "flow-golden"):
        s3.create_bucket(Bucket=bucket)
    svc = Service(env=base_env(
        tmp, _own_db(redis_url, 4), CERTUS_ASSURANCE_TRUST_BASE_URL=trust.url,
        CERTUS_ASSURANCE_TRUST_CA_BUNDLE=str(trust.cert),
        CERTUS_ASSURANCE_TRUST_TIMEOUT="10",
        CERTUS_ASSURANCE_S3_ENDPOINT_URL=proxy.url, CERTUS_ASSURANCE_DATALAKE_RAW_BUCKET="flow-raw",
        CERTUS_ASSURANCE_DATALAKE_GOLDEN_BUCKET="flow-golden", AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106
        CERTUS_ASSURANCE_REGISTRY=registry.host, CERTUS_ASSURANCE_REGISTRY_PLAIN_HTTP="true",
        CERTUS_ASSURANCE_REGISTRY_USERNAME="ci", CERTUS_ASSURANCE_REGISTRY_PASSWORD="s3cret",  # noqa: S106
        CERTUS_ASSURANCE_UPLOAD_RETRY_BACKOFF="1"), workdir=tmp)
    try:
        _start(svc)
        yield svc, moto, registry, trust, proxy
    finally:
        svc.stop()
        proxy.stop()
        trust.stop()
        registry.stop()
        moto.stop()


def test_remote_trust_permits_and_publishes_to_s3_and_registry(remote, vulnerable_repo, tmp_path):
    svc, moto, registry, _, _ = remote
    test_id = _scan(svc, vulnerable_repo)
    assert _request(svc, test_id).status_code == 202
    record = _wait_upload(svc, test_id)
    assert record["upload_status"] == "uploaded", record
    s3 = moto.client()
    bundle = svc.artifact_root / test_id
    for name, digest in _attested(bundle).items():
        obj = s3.get_object(Bucket="flow-golden", Key=f"security-scans/{test_id}/golden/{name}")
        assert hashlib.sha256(obj["Body"].read()).hexdigest() == digest
        assert obj["Metadata"]["test_id"] == test_id and obj["Metadata"]["workspace_id"] == "ws-test"
    permit = json.loads(s3.get_object(Bucket="flow-golden", Key=f"security-scans/{test_id}/permit.json")["Body"].read())
    assert permit["upload_permission_id"] == record["upload_permission_id"]
    oci = record["remote_artifacts"]["oci"]
    assert oci["reference"] == f"{registry.host}/certus/security-scans:{test_id}"

    cosign = find_cosign()
    if cosign is None:
        pytest.skip("stock cosign not found: cosign interop part skipped (see tests/support/cosign.py)")
    (tmp_path / ".docker").mkdir()
    auth = base64.b64encode(b"ci:s3cret").decode()
    (tmp_path / ".docker" / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))
    pub = Path(svc.workdir) / "keys" / "cosign.pub"
    ref = oci["reference_by_digest"]
    verify = run_cosign(cosign, "verify", "--key", str(pub), "--insecure-ignore-tlog", "--allow-http-registry", ref,
                        cwd=tmp_path)
    assert verify.returncode == 0, verify.stderr
    att = run_cosign(cosign, "verify-attestation", "--key", str(pub), "--insecure-ignore-tlog",
                     "--allow-http-registry", "--type", "https://certus-assurance.dev/attestations/security-scan/v1",
                     ref, cwd=tmp_path)
    assert att.returncode == 0, att.stderr


def test_remote_trust_denies_wrong_signer_and_a_trust_restart_is_waited_out(remote, vulnerable_repo):
    svc, moto, _, trust, _ = remote
    test_id = _scan(svc, vulnerable_repo)
    assert _request(svc, test_id, signer="mallory").status_code == 202
    record = _wait_upload(svc, test_id)
    assert record["upload_status"] == "denied" and record["upload_reason"].startswith("signer_not_allowed")
    trust.stop()
    try:
        assert _request(svc, test_id).status_code == 202

        def retrying() -> bool:
            events = svc.http.get(svc.url(f"/v1/security-scans/{test_id}/events?after=0&limit=1000"),
                                  timeout=30).json()["events"]
            return any(e["type"] == "upload" and "asking Certus-Trust again" in e.get("detail", "")
                       and e["detail"].startswith("trust_unreachable") for e in events)

        wait_for(retrying, timeout=120)
        # Trust was not there to decide: nothing is decided, nothing is published.
        assert svc.status(test_id)["upload_status"] == "pending"
        listed = moto.client().list_objects_v2(Bucket="flow-golden", Prefix=f"security-scans/{test_id}/")
        assert listed.get("KeyCount", 0) == 0
    finally:
        trust.start()
    record = _wait_upload(svc, test_id)
    assert record["upload_status"] == "uploaded", record.get("upload_reason")


def test_s3_failing_half_way_is_retried_and_completes(remote, vulnerable_repo):
    svc, moto, _, _, proxy = remote
    test_id = _scan(svc, vulnerable_repo)
    failures = {"left": 4}  # more than botocore's own attempts: the first publish task fails

    def fail(method: str, path: str) -> bool:
        if method == "PUT" and f"/{test_id}/incoming/summary.json" in path and failures["left"] > 0:
            failures["left"] -= 1
            return True
        return False

    proxy.fail = fail
    try:
        assert _request(svc, test_id).status_code == 202
        record = _wait_upload(svc, test_id)
    finally:
        proxy.fail = lambda method, path: False
    assert record["upload_status"] == "uploaded", record
    assert failures["left"] == 0
    events = svc.http.get(svc.url(f"/v1/security-scans/{test_id}/events"), params={"limit": 1000}).json()["events"]
    assert any(e["type"] == "upload" and e.get("retry_in") for e in events)
    s3 = moto.client()
    files = set(_attested(svc.artifact_root / test_id)) | {ATTESTATION_PATH}
    raw = s3.list_objects_v2(Bucket="flow-raw", Prefix=f"security-scans/{test_id}/incoming/")["Contents"]
    golden = s3.list_objects_v2(Bucket="flow-golden", Prefix=f"security-scans/{test_id}/golden/")["Contents"]
    assert len(raw) == len(golden) == len(files)


def test_standalone_trust_refuses_a_replayed_request(remote, vulnerable_repo):
    svc, _, _, trust, _ = remote
    test_id = _scan(svc, vulnerable_repo)
    key_dir = Path(svc.workdir) / "keys"
    signer = signing_keys.Signer(signing_keys.decrypt_private_key((key_dir / "cosign.key").read_bytes(), PASSWORD),
                         key_dir / "cosign.key", key_dir / "cosign.pub")
    record = ScanRecord.from_values(svc.status(test_id))
    request = build_request(root=svc.artifact_root / test_id, record=record, tier="verified",
                            signer_name="certus-assurance", signer=signer,
                            destinations={"raw_s3": "s3://flow-raw/x/", "oci_registry": "r/x:t"})
    assert request["metadata"]["commit"] == vulnerable_repo["first"] and request["metadata"]["branch"]
    client = RemoteTrustClient(trust.url, timeout=10, ca_bundle=str(trust.cert))
    first = client.verify_and_permit(request)
    assert first.permitted, first
    replay = client.verify_and_permit(request)
    assert not replay.permitted and replay.reason == "replay"
