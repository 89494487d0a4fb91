"""A credential reaches no further than it was given: an admin key of some workspaces manages only
keys within them (it could once mint a `*` admin key and take over every tenant), and a stream
token opens only a scan's stream, never an HTTP endpoint whose path happens to end in /stream."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.edge import BODY, auth, edge, make_app  # noqa: F401 - edge is a fixture


@pytest.fixture()
def tenants(edge):  # noqa: F811
    build, keys, client = edge
    c = make_app(build).test_client()
    made = {
        "root": keys.create("admin", ["*"], name="root"),
        "alpha": keys.create("admin", ["alpha"], name="alpha-admin"),
        "beta": keys.create("admin", ["beta"], name="beta-admin"),
        "both": keys.create("admin", ["alpha", "beta"], name="both-admin"),
        "alpha-ci": keys.create("submitter", ["alpha"], name="alpha-ci"),
        "beta-ci": keys.create("submitter", ["beta"], name="beta-ci"),
    }
    return c, {name: plain for name, (plain, _) in made.items()}, \
        {name: p.key_id for name, (_, p) in made.items()}, client


def _create(c, key, workspaces, role="admin"):
    return c.post("/v1/keys", json={"role": role, "workspaces": workspaces}, headers=auth(key))


@pytest.mark.parametrize("creator, workspaces", [
    ("alpha", ["*"]), ("alpha", ["beta"]), ("alpha", ["alpha", "beta"]), ("alpha", ["alpha", "*"]),
    ("both", ["*"]), ("both", ["gamma"]), ("both", ["alpha", "gamma"]),
])
def test_an_admin_cannot_create_a_key_beyond_its_workspaces(tenants, creator, workspaces):
    c, plain, _, client = tenants
    before = client.hlen("ca:keys")
    refused = _create(c, plain[creator], workspaces)
    assert refused.status_code == 403, refused.json
    assert refused.json["error"]["code"] == "key_scope_exceeded"
    assert "key" not in refused.json
    assert client.hlen("ca:keys") == before and len(client.keys("ca:key:*")) == before


@pytest.mark.parametrize("creator, workspaces", [
    ("alpha", ["alpha"]), ("both", ["alpha"]), ("both", ["beta", "alpha"]), ("root", ["*"]),
    ("root", ["gamma"]),
])
def test_an_admin_creates_keys_within_its_workspaces(tenants, creator, workspaces):
    c, plain, _, _ = tenants
    created = _create(c, plain[creator], workspaces)
    assert created.status_code == 201, created.json
    assert created.json["workspaces"] == sorted(workspaces)


def test_the_takeover_no_longer_works(tenants):
    # alpha's admin mints a `*` admin key, then reads beta's scans and revokes beta's keys with it
    c, plain, ids, client = tenants
    scan_b = c.post("/v1/security-scans", json={**BODY, "workspace_id": "beta"}, headers=auth(plain["beta-ci"]))
    assert scan_b.status_code == 202
    minted = _create(c, plain["alpha"], ["*"])
    assert minted.status_code == 403
    # and with its own key: beta stays out of reach
    own = auth(plain["alpha"])
    assert c.get(f"/v1/security-scans/{scan_b.json['test_id']}", headers=own).status_code == 404
    assert c.delete(f"/v1/keys/{ids['beta-ci']}", headers=own).status_code == 404
    assert c.get("/v1/security-scans?workspace_id=beta", headers=auth(plain["beta-ci"])).status_code == 200


@pytest.mark.parametrize("lister, visible", [
    ("alpha", {"alpha", "alpha-ci"}),
    ("beta", {"beta", "beta-ci"}),
    ("both", {"alpha", "beta", "both", "alpha-ci", "beta-ci"}),
    ("root", {"root", "alpha", "beta", "both", "alpha-ci", "beta-ci"}),
])
def test_an_admin_lists_only_keys_within_its_workspaces(tenants, lister, visible):
    c, plain, ids, _ = tenants
    listing = c.get("/v1/keys", headers=auth(plain[lister]))
    assert listing.status_code == 200
    assert {item["key_id"] for item in listing.json["items"]} == {ids[name] for name in visible}


@pytest.mark.parametrize("revoker, target", [
    ("alpha", "beta-ci"), ("alpha", "beta"), ("alpha", "both"), ("alpha", "root"),
    ("both", "root"), ("beta", "alpha-ci"),
])
def test_an_admin_cannot_revoke_a_key_beyond_its_workspaces(tenants, revoker, target):
    # answered as for an unknown id: a tenant does not learn which key ids exist elsewhere
    c, plain, ids, client = tenants
    unknown = c.delete("/v1/keys/0123456789ab", headers=auth(plain[revoker]))
    refused = c.delete(f"/v1/keys/{ids[target]}", headers=auth(plain[revoker]))
    assert refused.status_code == unknown.status_code == 404
    assert refused.json["error"]["code"] == unknown.json["error"]["code"] == "key_not_found"
    assert client.hexists("ca:keys", ids[target])
    assert c.get("/v1/security-scans", headers=auth(plain[target])).status_code == 200  # still works


@pytest.mark.parametrize("revoker, target", [
    ("alpha", "alpha-ci"), ("both", "alpha-ci"), ("both", "beta"), ("root", "both"),
])
def test_an_admin_revokes_keys_within_its_workspaces(tenants, revoker, target):
    c, plain, ids, _ = tenants
    assert c.delete(f"/v1/keys/{ids[target]}", headers=auth(plain[revoker])).status_code == 204
    assert c.get("/v1/security-scans", headers=auth(plain[target])).status_code == 401


# -- stream tokens --------------------------------------------------------------------------------
def _token(c, key):
    return c.post("/v1/stream-tokens", headers=auth(key)).json["token"]


WS = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
      "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


def test_a_stream_token_opens_no_http_endpoint_ending_in_stream(edge, tmp_path: Path):  # noqa: F811
    build, keys, _ = edge
    c = make_app(build).test_client()
    submitter, _ = keys.create("submitter", ["ws-a"])
    reader, _ = keys.create("reader", ["ws-a"])
    test_id = c.post("/v1/security-scans", json=BODY, headers=auth(submitter)).json["test_id"]
    bundle = tmp_path / "a" / test_id / "logs"
    bundle.mkdir(parents=True)
    (bundle / "stream").write_text("the bundle's own file")
    assert c.get(f"/v1/security-scans/{test_id}/artifacts/logs/stream", headers=auth(reader)).status_code == 200
    for path in (f"/v1/security-scans/{test_id}/artifacts/logs/stream",  # a download named stream
                 f"/v1/security-scans/{test_id}/artifacts/stream",
                 "/v1/security-scans/stream", "/v1/stream", "/v1/keys/stream",
                 f"/v1/security-scans/{test_id}/x/stream", f"/v1/security-scans/{test_id}/stream/stream",
                 "/v1/security-scans/test_0123456789ab/../stream"):
        for headers in ({}, WS):
            answer = c.get(f"{path}?token={_token(c, reader)}", headers=headers)
            assert answer.status_code == 401, (path, headers, answer.status_code)
            assert answer.json["error"]["code"] == "unauthorized"
    # the stream route itself, asked as plain HTTP rather than a WebSocket upgrade
    plain_http = c.get(f"/v1/security-scans/{test_id}/stream?token={_token(c, reader)}")
    assert plain_http.status_code == 401
