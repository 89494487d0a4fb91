"""The upload-request endpoint on real Redis, with a fake of our task-sending port."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from app import create_app
from tasks import names
from tasks.api_keys import KeyStore
from tasks.ids import new_test_id
from tasks.records import ScanRecord
from tasks.settings import Settings
from tasks.store import ScanStore


class FakeCelery:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, list[Any]]] = []
        self.fail = fail

    def send_task(self, name: str, args: list[Any], **_: Any) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.sent.append((name, args))


def _app(redis_url: str, celery: FakeCelery):
    client = create_app(Settings(redis_url=redis_url), celery=celery).test_client()  # type: ignore[arg-type]
    key, _ = KeyStore(redis.Redis.from_url(redis_url, decode_responses=True)).create("publisher", ["ws"])
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return client


def _scan(redis_client, status: str = "SUCCEEDED") -> str:
    test_id = new_test_id()
    ScanStore(redis_client).create(ScanRecord(test_id=test_id, workspace_id="ws", component_id="c",
                                              assessment_id="a", profile="smoke", status=status))
    return test_id


def test_second_request_in_flight_returns_the_first(redis_url, redis_client):
    celery = FakeCelery()
    client = _app(redis_url, celery)
    test_id = _scan(redis_client)
    first = client.post(f"/v1/security-scans/{test_id}/upload-request")  # empty body: defaults
    assert first.status_code == 202
    assert first.json["upload_status"] == "pending" and first.json["upload_permission_id"] is None
    second = client.post(f"/v1/security-scans/{test_id}/upload-request", json={"tier": "basic"})
    assert second.status_code == 202 and second.json["existing"] is True
    assert second.json["upload_request_id"] == first.json["upload_request_id"]
    assert celery.sent == [(names.UPLOAD_VERIFY, [test_id, first.json["upload_request_id"]])]
    record = client.get(f"/v1/security-scans/{test_id}").json
    assert record["upload_status"] == "pending" and record["upload_request"]["tier"] == "verified"


@pytest.mark.parametrize(("body", "field"), [({"tier": "gold"}, "tier"), ({"signer": "-x"}, "signer"),
                                             ({"extra": 1}, "extra")])
def test_bad_bodies_are_422(redis_url, redis_client, body, field):
    client = _app(redis_url, FakeCelery())
    resp = client.post(f"/v1/security-scans/{_scan(redis_client)}/upload-request", json=body)
    assert resp.status_code == 422 and field in resp.json["error"]["fields"]


def test_unknown_and_unfinished_scans(redis_url, redis_client):
    celery = FakeCelery()
    client = _app(redis_url, celery)
    assert client.post("/v1/security-scans/test_000000000000/upload-request").json["error"]["code"] == \
        "scan_not_found"
    assert client.post("/v1/security-scans/nonsense/upload-request").status_code == 404
    for status in ("QUEUED", "RUNNING", "FAILED", "CANCELLED"):
        resp = client.post(f"/v1/security-scans/{_scan(redis_client, status)}/upload-request")
        assert resp.status_code == 409 and resp.json["error"]["code"] == "scan_not_succeeded"
    assert celery.sent == []


def test_queue_down_denies_and_says_so(redis_url, redis_client):
    client = _app(redis_url, FakeCelery(fail=True))
    test_id = _scan(redis_client)
    resp = client.post(f"/v1/security-scans/{test_id}/upload-request")
    assert resp.status_code == 503 and resp.json["error"]["code"] == "queue_unavailable"
    assert client.get(f"/v1/security-scans/{test_id}").json["upload_status"] == "denied"
