"""Manifest verification through the whole service: API -> Celery worker, settings from the environment."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from stack.redis_server import RedisServer
from tests.support.manifest_servers import AWS_ENV, start_s3
from tests.support.service import Service, base_env
from workers.signing import signing_keys
from workers.signing.attestation import verify_bundle

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def strict_service(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("strict")
    # A Redis of its own: on the shared one, the session service's workers would take these scans
    # from the common queue and run them with their own settings.
    redis_server = RedisServer(tmp / "redis").start()
    redis_url = redis_server.url
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp / "manifest.pub").write_bytes(signing_keys.public_pem(key))
    s3 = start_s3()
    env = base_env(tmp, redis_url, **AWS_ENV,
                   CERTUS_ASSURANCE_S3_ENDPOINT_URL=s3.url, CERTUS_ASSURANCE_MANIFEST_S3_ALLOWED="cfg/shop",
                   CERTUS_ASSURANCE_MANIFEST_VERIFICATION_KEY_REF=str(tmp / "manifest.pub"),
                   CERTUS_ASSURANCE_MANIFEST_VERIFICATION_REQUIRED="true")
    svc = Service(env=env, workdir=tmp)
    try:
        svc.start_worker("strict")
        svc.start_api()
        svc.wait_workers(1)
        yield svc, s3, key
    finally:
        svc.stop()
        s3.stop()
        redis_server.stop()


def test_signed_s3_manifest_runs_and_unsigned_inline_is_refused(strict_service, vulnerable_repo):
    svc, s3, key = strict_service
    text = (json.dumps({"product": "shop", "profiles": [{"name": "team", "tools": ["bandit"]}]}) + "\n").encode()
    client = s3.client()
    client.create_bucket(Bucket="cfg")
    client.put_object(Bucket="cfg", Key="shop/manifest.json", Body=text)
    client.put_object(Bucket="cfg", Key="shop/manifest.sig", Body=base64.b64encode(signing_keys.sign_bytes(key, text)))

    ok = svc.submit(git_url=vulnerable_repo["url"], profile="team", manifest_uri="s3://cfg/shop/manifest.json")
    assert ok.status_code == 202, ok.text
    refused = svc.submit(git_url=vulnerable_repo["url"], profile="smoke",
                         manifest={"profiles": [{"name": "smoke", "tools": ["bandit"]}]})
    assert refused.status_code == 202, refused.text

    done = svc.wait_done(ok.json()["test_id"], timeout=180)
    assert done["status"] == "SUCCEEDED", done["errors"]
    assert done["manifest_metadata"]["signature"]["verified"] is True
    bundle = svc.artifact_root / done["test_id"]
    assert (bundle / "manifest.json").read_bytes() == text
    assert (bundle / "manifest.sig").is_file()
    result = verify_bundle(bundle, (svc.workdir / "keys" / "cosign.pub").read_bytes())
    assert result.ok and result.statement is not None
    assert "manifest.sig" in {s["name"] for s in result.statement["subject"]}

    failed = svc.wait_done(refused.json()["test_id"], timeout=180)
    assert failed["status"] == "FAILED"
    assert failed["errors"][0]["code"] == "manifest_signature_missing"
    assert "manifest_signature" not in failed


def test_manifest_signature_needs_an_inline_manifest(strict_service, vulnerable_repo):
    svc, _, _ = strict_service
    resp = svc.submit(git_url=vulnerable_repo["url"], manifest_path="m.json",
                      manifest_signature=base64.b64encode(b"x" * 70).decode())
    assert resp.status_code == 422
    assert "manifest_signature" in resp.json()["error"]["fields"]
