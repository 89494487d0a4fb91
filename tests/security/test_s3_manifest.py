"""An ``s3://`` manifest URI cannot make the service read, and copy into a bundle, what its S3
credentials can read: only objects under MANIFEST_S3_ALLOWED are read (checked at submit, 422, and
again by the worker before any request), and a document that is not a manifest — a Terraform state
file — fails ``manifest_invalid`` with none of its content in the bundle, the errors or the events.

moto's S3 server runs in HTTP mode on loopback behind a recording proxy, so the tests see every
request the service made.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tasks import manifest as manifests
from tasks.events import stream_key
from tasks.ids import new_test_id
from tasks.records import ScanRecord
from tasks.settings import Settings
from tasks.store import ScanStore
from tests.support.edge import BODY, auth, edge, make_app  # noqa: F401 - edge is a fixture
from tests.support.manifest_servers import AWS_ENV, start_s3
from tests.support.records import scan_record
from tests.support.uploads_servers import FaultyProxy
from workers.engine import ScanEngine
from workers.pipeline.manifest import resolve_manifest
from workers.pipeline.manifest_sources import ManifestSourceError

pytestmark = pytest.mark.integration

MANIFEST = json.dumps({"product": "shop", "profiles": [{"name": "team", "tools": ["bandit"]}]}).encode()
CANARY = "AKIAcanary7e3b9d"  # a secret inside the state file: it must turn up nowhere
TFSTATE = json.dumps({
    "version": 4, "terraform_version": "1.7.5", "serial": 12, "lineage": "3f0e",
    "outputs": {"db_password": {"value": f"{CANARY}-output", "type": "string", "sensitive": True}},
    "resources": [{"mode": "managed", "type": "aws_iam_access_key", "name": "ci", "instances": [
        {"attributes": {"id": CANARY, "secret": f"{CANARY}-secret"}}]}],
}, indent=2).encode()


@pytest.fixture(scope="module")
def s3():
    saved = {k: os.environ.get(k) for k in AWS_ENV}
    os.environ.update(AWS_ENV)
    server = start_s3()
    client = server.client()
    for bucket in ("manifests", "infra"):
        client.create_bucket(Bucket=bucket)
    client.put_object(Bucket="manifests", Key="team/manifest.json", Body=MANIFEST)
    client.put_object(Bucket="manifests", Key="team-secrets/manifest.json", Body=MANIFEST)
    client.put_object(Bucket="manifests", Key="acme/manifest.json", Body=MANIFEST)
    client.put_object(Bucket="manifests", Key="team/terraform.tfstate", Body=TFSTATE)
    client.put_object(Bucket="infra", Key="prod/terraform.tfstate", Body=TFSTATE)
    proxy = FaultyProxy(int(server.url.rsplit(":", 1)[1])).start()
    try:
        yield proxy
    finally:
        proxy.stop()
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _settings(proxy: FaultyProxy, *allowed: str) -> Settings:
    return Settings(s3_endpoint_url=proxy.url, manifest_s3_allowed=allowed)


def _code(settings: Settings, uri: str, workspace: str | None = None, **kw) -> str:
    record = scan_record(profile="team", manifest_uri=uri, workspace_id=workspace, **kw)
    with pytest.raises((ManifestSourceError, manifests.ManifestInvalid)) as err:
        resolve_manifest(record, settings, known_tools={"bandit"})
    assert CANARY not in str(err.value)
    return getattr(err.value, "code", "manifest_invalid")


def _reads(proxy: FaultyProxy) -> list[str]:
    return [path.split("?")[0] for method, path in proxy.seen if method == "GET"]


def test_without_an_allow_list_s3_manifests_are_refused_before_any_request(s3):
    s3.seen.clear()
    assert _code(_settings(s3), "s3://infra/prod/terraform.tfstate") == "manifest_source_not_allowed"
    assert _code(_settings(s3), "s3://manifests/team/manifest.json") == "manifest_source_not_allowed"
    assert s3.seen == []


def test_only_objects_under_an_allowed_prefix_are_read(s3):
    settings = _settings(s3, "manifests/team")
    s3.seen.clear()
    ok = resolve_manifest(scan_record(profile="team", manifest_uri="s3://manifests/team/manifest.json"), settings,
                          known_tools={"bandit"})
    assert ok.data == MANIFEST and ok.profile_resolved == "manifest:team"
    for uri in ("s3://infra/prod/terraform.tfstate",
                "s3://manifests/team-secrets/manifest.json",  # a prefix is a folder, not a string prefix
                "s3://manifests/team/../../infra/prod/terraform.tfstate",
                "s3://manifests/team/./manifest.json",
                "s3://manifests//team/manifest.json",
                "s3://manifests/acme/manifest.json"):
        assert _code(settings, uri) == "manifest_source_not_allowed", uri
    # The signature is read with the same credentials: the same rule holds for it.
    assert _code(settings, "s3://manifests/team/manifest.json",
                 manifest_signature_uri="s3://infra/prod/terraform.tfstate") == "manifest_source_not_allowed"
    assert all(path.startswith("/manifests/team/") for path in _reads(s3)), s3.seen


def test_entries_for_one_workspace_apply_to_it_alone(s3):
    settings = _settings(s3, "acme=manifests/acme")
    uri = "s3://manifests/acme/manifest.json"
    record = scan_record(profile="team", manifest_uri=uri, workspace_id="acme")
    assert resolve_manifest(record, settings, known_tools={"bandit"}).data == MANIFEST
    assert _code(settings, uri, workspace="beta") == "manifest_source_not_allowed"
    assert _code(settings, uri) == "manifest_source_not_allowed"


def test_a_state_file_in_an_allowed_prefix_is_refused_and_copied_nowhere(s3, tmp_path, redis_client):
    src = tmp_path / "src"
    src.mkdir()
    (src / "app.py").write_text("print('hello')\n")
    settings = Settings(redis_url="redis://unused", artifact_root=str(tmp_path / "artifacts"),
                        work_root=str(tmp_path / "work"), signing_key_dir=str(tmp_path / "keys"),
                        allowed_source_roots=(str(tmp_path),), lease_seconds=6,
                        s3_endpoint_url=s3.url, manifest_s3_allowed=("manifests/team",))
    engine = ScanEngine(settings, redis_client, scanners={})
    test_id = new_test_id()
    store = ScanStore(redis_client, retention_seconds=600)
    store.create(ScanRecord(test_id=test_id, workspace_id="ws-s3", component_id="c", assessment_id="a",
                            source_type="directory", directory_path=str(src), profile="smoke",
                            manifest_uri="s3://manifests/team/terraform.tfstate"))
    engine.run_scan(test_id)
    stored = store.get(test_id)
    assert stored is not None
    record = stored.to_dict()
    assert record["status"] == "FAILED"
    assert [e["code"] for e in record["errors"]] == ["manifest_invalid"]
    assert CANARY not in json.dumps(record)
    events = redis_client.xrange(stream_key(test_id))
    assert events and CANARY not in json.dumps(events)
    bundle = Path(settings.artifact_root) / test_id
    assert not (bundle / "manifest.json").exists()
    for path in bundle.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path
    # Other shapes that are not manifests: unknown fields anywhere, a key twice, a threshold key that
    # carries content. The messages name schema paths only.
    invalid = {
        "outer.json": {"profiles": [], "resources": [CANARY]},
        "profile.json": {"profiles": [{"name": "team", "tools": ["bandit"], CANARY: 1}]},
        "threshold.json": {"profiles": [{"name": "team", "tools": ["bandit"], "thresholds": {CANARY: 1}}]},
    }
    client = _boto(s3)
    for name, doc in invalid.items():
        client.put_object(Bucket="manifests", Key=f"team/{name}", Body=json.dumps(doc).encode())
    client.put_object(Bucket="manifests", Key="team/twice.json",
                      Body=b'{"product": "' + CANARY.encode() + b'", "product": "shop"}')
    for name in (*invalid, "twice.json"):
        assert _code(settings, f"s3://manifests/team/{name}") == "manifest_invalid", name


def _boto(proxy: FaultyProxy):
    import boto3

    return boto3.client("s3", endpoint_url=proxy.url, region_name="us-east-1")


# -- at the edge --------------------------------------------------------------------------------
def test_submit_refuses_an_s3_manifest_outside_the_allow_list(edge):  # noqa: F811 - the fixture
    build, keys, client = edge
    app = make_app(build, manifest_s3_allowed=("manifests/team", "ws-a=manifests/ws-a"))
    key, _ = keys.create("submitter", ["ws-a", "ws-b"])
    c = app.test_client()
    before = sorted(client.keys("*"))
    for fields in ({"manifest_uri": "s3://infra/prod/terraform.tfstate"},
                   {"manifest_uri": "s3://manifests/team/../x/terraform.tfstate"},
                   {"manifest_uri": "s3://manifests/team/manifest.json",
                    "manifest_signature_uri": "s3://infra/prod/terraform.tfstate"},
                   {"manifest_uri": "s3://manifests/ws-a/manifest.json", "workspace_id": "ws-b"}):
        resp = c.post("/v1/security-scans", json={**BODY, **fields}, headers=auth(key))
        assert resp.status_code == 422, (fields, resp.json)
        assert resp.json["error"]["code"] == "manifest_source_not_allowed"
    assert app.sent == []
    assert sorted(k for k in client.keys("*") if not k.startswith("ca:rl:")) == \
        sorted(k for k in before if not k.startswith("ca:rl:"))
    for uri in ("s3://manifests/team/manifest.json", "s3://manifests/ws-a/manifest.json"):
        ok = c.post("/v1/security-scans", json={**BODY, "manifest_uri": uri}, headers=auth(key))
        assert ok.status_code == 202, ok.json
