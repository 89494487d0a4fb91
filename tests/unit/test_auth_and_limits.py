"""Keys, roles, tenants and limits on the real app (Flask test client) against a real Redis.

Celery is replaced by a recorder of sent tasks: these tests are about the edge, not the engine.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.edge import BODY, auth, make_app

ROOT = Path(__file__).resolve().parents[2]


def test_every_v1_endpoint_needs_a_key(edge):
    build, keys, _ = edge
    c = make_app(build).test_client()
    for method, path in [("get", "/v1/security-scans"), ("post", "/v1/security-scans"),
                         ("get", "/v1/security-scans/test_0123456789ab"),
                         ("post", "/v1/security-scans/test_0123456789ab/cancel"),
                         ("get", "/v1/security-scans/test_0123456789ab/events"),
                         ("get", "/v1/security-scans/test_0123456789ab/artifacts"),
                         ("post", "/v1/security-scans/test_0123456789ab/upload-request"),
                         ("post", "/v1/security-scans/upload-archive"),
                         ("get", "/v1/security-scans/test_0123456789ab/stream"),
                         ("post", "/v1/stream-tokens"), ("get", "/v1/anything")]:
        resp = getattr(c, method)(path)
        assert resp.status_code == 401, (method, path, resp.status_code)
        assert resp.json["error"]["code"] == "unauthorized"
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        bad = getattr(c, method)(path, headers=auth("ca_000000000000_" + "x" * 43))
        assert bad.status_code == 401
        basic = getattr(c, method)(path, headers={"Authorization": "Basic dXNlcjpwYXNz"})
        assert basic.status_code == 401
    assert c.get("/health").status_code == 200
    assert c.get("/ready").status_code == 200
    assert c.get("/stats").status_code == 401


def test_a_route_outside_v1_needs_a_key_unless_it_is_named_open(edge):
    build, keys, _ = edge
    app = make_app(build)
    # A route added anywhere, as a future blueprint would be: closed until named in OPEN_ENDPOINTS.
    app.add_url_rule("/internal/probe", "probe", lambda: "probed")
    c = app.test_client()
    reader, _ = keys.create("reader", ["ws-a"])
    answer = c.get("/internal/probe")
    assert answer.status_code == 401 and answer.json["error"]["code"] == "unauthorized"
    assert c.get("/internal/probe", headers=auth(reader)).get_data(as_text=True) == "probed"
    assert c.get("/no/such/path").status_code == 404  # unknown paths still answer 404
    for open_path in ("/", "/static/app.js", "/openapi.yaml", "/openapi.json", "/schemas/manifest.json", "/health"):
        assert c.get(open_path).status_code == 200, open_path


def test_service_endpoints_need_an_admin_key_unless_opened(edge):
    build, keys, _ = edge
    c = make_app(build).test_client()
    reader, _ = keys.create("reader", ["ws-a"])
    admin, _ = keys.create("admin", ["*"])
    assert c.get("/stats", headers=auth(reader)).status_code == 403
    assert c.get("/stats", headers=auth(admin)).status_code == 200
    assert make_app(build, open_service_endpoints=True).test_client().get("/stats").status_code == 200


def test_roles(edge):
    build, keys, _ = edge
    app = make_app(build)
    c = app.test_client()
    reader, _ = keys.create("reader", ["ws-a"])
    submitter, _ = keys.create("submitter", ["ws-a"])
    publisher, _ = keys.create("publisher", ["ws-a"])
    refused = c.post("/v1/security-scans", json=BODY, headers=auth(reader))
    assert refused.status_code == 403 and refused.json["error"]["code"] == "forbidden"
    created = c.post("/v1/security-scans", json=BODY, headers=auth(submitter))
    assert created.status_code == 202, created.json
    test_id = created.json["test_id"]
    assert c.get(f"/v1/security-scans/{test_id}", headers=auth(reader)).status_code == 200
    assert c.post(f"/v1/security-scans/{test_id}/cancel", headers=auth(reader)).status_code == 403
    # uploads are for publishers: a submitter is refused before the endpoint is even looked up
    up = f"/v1/security-scans/{test_id}/upload-request"
    assert c.post(up, json={}, headers=auth(submitter)).status_code == 403
    assert c.post(up, json={}, headers=auth(publisher)).status_code != 403
    assert c.post(f"/v1/security-scans/{test_id}/cancel", headers=auth(submitter)).status_code == 202


def test_a_key_never_reaches_another_workspace(edge):
    build, keys, client = edge
    app = make_app(build)
    c = app.test_client()
    key_a, _ = keys.create("admin", ["ws-a"])
    key_b, _ = keys.create("publisher", ["ws-b"])
    key_ab, _ = keys.create("reader", ["ws-a", "ws-b"])
    scan_b = c.post("/v1/security-scans", json={**BODY, "workspace_id": "ws-b"}, headers=auth(key_b)).json["test_id"]
    scan_a = c.post("/v1/security-scans", json=BODY, headers=auth(key_a)).json["test_id"]
    missing = c.get("/v1/security-scans/test_0123456789ab", headers=auth(key_a)).json
    for method, path in [("get", f"/v1/security-scans/{scan_b}"),
                         ("post", f"/v1/security-scans/{scan_b}/cancel"),
                         ("get", f"/v1/security-scans/{scan_b}/events"),
                         ("get", f"/v1/security-scans/{scan_b}/artifacts"),
                         ("get", f"/v1/security-scans/{scan_b}/artifacts/scan.json"),
                         ("post", f"/v1/security-scans/{scan_b}/upload-request")]:
        resp = getattr(c, method)(path, headers=auth(key_a), json={} if method == "post" else None)
        assert resp.status_code == 404, (path, resp.status_code)
        # the same answer as for a scan that does not exist at all
        if path.endswith(scan_b):
            assert resp.json["error"]["code"] == missing["error"]["code"]
    assert client.hget(f"ca:scan:{scan_b}", "status") == '"QUEUED"'  # the cancel did nothing
    # submitting into, or listing, a workspace the key does not hold: 404 as well
    into_b = c.post("/v1/security-scans", json={**BODY, "workspace_id": "ws-b"}, headers=auth(key_a))
    assert into_b.status_code == 404 and into_b.json["error"]["code"] == "workspace_not_found"
    listed = c.get("/v1/security-scans", query_string={"workspace_id": "ws-b"}, headers=auth(key_a))
    assert listed.status_code == 404
    items = c.get("/v1/security-scans", headers=auth(key_a)).json["items"]
    assert [i["test_id"] for i in items] == [scan_a]
    both = {i["test_id"] for i in c.get("/v1/security-scans", headers=auth(key_ab)).json["items"]}
    assert both == {scan_a, scan_b}
    assert app.sent == [scan_b, scan_a]


def test_stream_tokens_are_single_use_and_bound_to_the_key(edge):
    build, keys, client = edge
    c = make_app(build).test_client()
    key_a, principal = keys.create("reader", ["ws-a"])
    resp = c.post("/v1/stream-tokens", headers=auth(key_a))
    assert resp.status_code == 201
    token = resp.json["token"]
    assert 0 < client.ttl(next(iter(client.scan_iter("ca:wstoken:*")))) <= 60
    assert keys.redeem_stream_token(token) == principal
    assert keys.redeem_stream_token(token) is None  # used up
    # a token is no key: it does not open HTTP endpoints
    token = c.post("/v1/stream-tokens", headers=auth(key_a)).json["token"]
    assert c.get(f"/v1/security-scans?token={token}").status_code == 401
    # and a revoked key's tokens are worthless
    keys.revoke(principal.key_id)
    assert keys.redeem_stream_token(token) is None
    assert c.get("/v1/security-scans", headers=auth(key_a)).status_code == 401


def test_keys_are_stored_hashed(edge):
    _, keys, client = edge
    plain, principal = keys.create("submitter", ["ws-a"], name="ci")
    dump = " ".join(str(client.dump(k)) for k in client.scan_iter("*"))
    assert plain not in dump and plain.split("_")[-1] not in dump
    assert [k["key_id"] for k in keys.list()] == [principal.key_id]
    assert "hash" not in keys.list()[0]


def test_rate_limit_per_key_with_retry_after(edge):
    build, keys, _ = edge
    c = make_app(build, rate_limit_per_minute=6, rate_limit_burst=3).test_client()
    key, _ = keys.create("reader", ["ws-a"])
    other, _ = keys.create("reader", ["ws-a"])
    codes = [c.get("/v1/security-scans", headers=auth(key)).status_code for _ in range(4)]
    assert codes[:3] == [200, 200, 200] and codes[3] == 429
    limited = c.get("/v1/security-scans", headers=auth(key))
    assert limited.json["error"]["code"] == "rate_limited" and int(limited.headers["Retry-After"]) >= 1
    assert c.get("/v1/security-scans", headers=auth(other)).status_code == 200  # per key
    # the bucket lives in Redis: a second replica sees the same count
    replica = make_app(build, rate_limit_per_minute=6, rate_limit_burst=3).test_client()
    assert replica.get("/v1/security-scans", headers=auth(key)).status_code == 429


def test_keys_that_fail_take_no_token_and_revoking_clears_the_bucket(edge):
    build, keys, client = edge
    c = make_app(build, rate_limit_per_minute=6, rate_limit_burst=2).test_client()
    plain, principal = keys.create("reader", ["ws-a"])
    forged = plain[:-4] + ("AAAA" if not plain.endswith("AAAA") else "BBBB")
    assert [c.get("/v1/security-scans", headers=auth(forged)).status_code for _ in range(5)] == [401] * 5
    assert client.keys("ca:rl:*") == []  # unknown keys leave nothing behind
    assert [c.get("/v1/security-scans", headers=auth(plain)).status_code for _ in range(3)] == [200, 200, 429]
    assert client.exists(f"ca:rl:{principal.key_hash}")
    assert keys.revoke(principal.key_id)
    assert not client.exists(f"ca:rl:{principal.key_hash}")
    assert c.get("/v1/security-scans", headers=auth(plain)).status_code == 401


def _stored_scans(client):
    return client.zcard("ca:idx:all")


def test_a_key_revoked_after_this_process_remembered_it_is_refused_and_nothing_is_written(edge):
    # A submit with a key the process has seen confirms the key inside its write (one round trip);
    # revocation in between must still answer 401, whatever else is wrong with the request.
    build, keys, client = edge
    app = make_app(build)
    c = app.test_client()
    cases = [("submitter", {"json": BODY}),  # refused by the write itself
             ("submitter", {"json": {**BODY, "git_url": "ftp://x"}}),  # 422 otherwise
             ("submitter", {"json": {**BODY, "workspace_id": "ws-b"}}),  # 404 otherwise
             ("submitter", {"data": "x"}),  # 415 otherwise
             ("reader", {"json": BODY})]  # 403 otherwise
    for role, request in cases:
        plain, principal = keys.create(role, ["ws-a"])
        seen = c.post("/v1/security-scans", json=BODY, headers=auth(plain))  # now remembered
        assert seen.status_code == (202 if role == "submitter" else 403)
        written = _stored_scans(client), len(app.sent)
        assert keys.revoke(principal.key_id)
        refused = c.post("/v1/security-scans", headers=auth(plain), **request)
        assert refused.status_code == 401, (role, request, refused.json)
        assert refused.json["error"]["code"] == "unauthorized"
        assert (_stored_scans(client), len(app.sent)) == written
        assert not client.exists(f"ca:rl:{principal.key_hash}")


def test_a_remembered_key_spends_one_token_per_submit_valid_or_not(edge):
    build, keys, client = edge
    app = make_app(build, rate_limit_per_minute=1, rate_limit_burst=5)
    c = app.test_client()
    plain, principal = keys.create("submitter", ["ws-a"])
    codes = [c.post("/v1/security-scans", json=BODY, headers=auth(plain)).status_code for _ in range(2)]
    codes += [c.post("/v1/security-scans", json={**BODY, "profile": "nope"}, headers=auth(plain)).status_code,
              c.post("/v1/security-scans", json={**BODY, "workspace_id": "ws-b"}, headers=auth(plain)).status_code]
    assert codes == [202, 202, 422, 404]
    assert float(client.hget(f"ca:rl:{principal.key_hash}", "t")) == pytest.approx(1, abs=0.1)  # 5 - 4
    assert c.post("/v1/security-scans", json=BODY, headers=auth(plain)).status_code == 202
    limited = c.post("/v1/security-scans", json=BODY, headers=auth(plain))
    assert limited.status_code == 429 and limited.json["error"]["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    bad = c.post("/v1/security-scans", json={"nope": 1}, headers=auth(plain))
    assert bad.status_code == 429  # out of tokens comes before what is wrong with the body
    assert _stored_scans(client) == 3 and len(app.sent) == 3


def test_queue_cap_per_workspace(edge):
    build, keys, _ = edge
    app = make_app(build, max_queued_per_workspace=2)
    c = app.test_client()
    key, _ = keys.create("submitter", ["ws-a", "ws-b"])
    assert [c.post("/v1/security-scans", json=BODY, headers=auth(key)).status_code for _ in range(2)] == [202, 202]
    full = c.post("/v1/security-scans", json=BODY, headers=auth(key))
    assert full.status_code == 429 and full.json["error"]["code"] == "queue_full" and full.headers["Retry-After"]
    assert c.post("/v1/security-scans", json={**BODY, "workspace_id": "ws-b"}, headers=auth(key)).status_code == 202
    assert len(app.sent) == 3


def test_body_size_and_json_depth(edge):
    build, keys, client = edge
    c = make_app(build, max_body_bytes=4096, max_json_depth=8).test_client()
    key, _ = keys.create("submitter", ["ws-a"])
    before = set(client.scan_iter("ca:scan:*"))
    deep = c.post("/v1/security-scans", data="[" * 5000 + "]" * 5000, content_type="application/json",
                  headers=auth(key))
    assert deep.status_code == 413 and deep.json["error"]["code"] == "payload_too_large"
    nested = {"a": 1}
    for _ in range(10):
        nested = {"x": nested}
    deep = c.post("/v1/security-scans", json={**BODY, "manifest": nested}, headers=auth(key))
    assert deep.status_code == 413 and deep.json["error"]["code"] == "json_too_deep"
    # brackets inside strings do not count
    ok = c.post("/v1/security-scans", json={**BODY, "requested_by": "[[[[[[[[[[[[[{{{{{{{{"}, headers=auth(key))
    assert ok.status_code == 202
    big = c.post("/v1/security-scans", data=b" " * 5000, content_type="application/json", headers=auth(key))
    assert big.status_code == 413
    assert set(client.scan_iter("ca:scan:*")) - before == {f"ca:scan:{ok.json['test_id']}"}


def test_keys_command(edge, redis_url):
    _, keys, _ = edge
    env = {"CERTUS_ASSURANCE_REDIS_URL": redis_url.rsplit("/", 1)[0] + "/5", "PATH": "/usr/bin:/bin"}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "app.keys", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=60)

    created = run("create", "--role", "publisher", "--workspace", "acme", "--name", "ci")
    assert created.returncode == 0, created.stderr
    plain = created.stdout.strip()
    principal = keys.authenticate(plain)
    assert principal is not None and principal.role == "publisher" and principal.workspaces == {"acme"}
    listed = run("list")
    assert principal.key_id in listed.stdout and plain not in listed.stdout
    assert run("create", "--role", "root", "--workspace", "acme").returncode != 0
    assert run("create", "--role", "reader", "--workspace", "Not Valid").returncode == 2
    assert run("revoke", principal.key_id).returncode == 0
    assert keys.authenticate(plain) is None
    assert run("revoke", principal.key_id).returncode == 1


def test_make_run_creates_one_admin_key_in_a_private_file(edge, tmp_path, capsys):
    from stack.__main__ import ensure_admin_key

    _, keys, client = edge
    url = client.connection_pool.connection_kwargs
    redis_url = f"redis://{url['host']}:{url['port']}/{url['db']}"
    key_file = tmp_path / "var" / "admin-key"
    ensure_admin_key(redis_url, key_file)
    assert str(key_file) in capsys.readouterr().out
    assert key_file.stat().st_mode & 0o777 == 0o600
    plain = key_file.read_text().strip()
    principal = keys.authenticate(plain)
    assert principal is not None and principal.role == "admin" and principal.all_workspaces
    ensure_admin_key(redis_url, key_file)  # a second start reuses it
    assert key_file.read_text().strip() == plain and len(keys.list()) == 1
    keys.revoke(principal.key_id)
    ensure_admin_key(redis_url, key_file)  # a revoked key is replaced
    assert keys.authenticate(key_file.read_text().strip()) is not None
