"""API keys over HTTP (/v1/keys) on the real app against a real Redis: admin only, shown once,
stored hashed, revocable at once, and a bad request writes nothing."""

from __future__ import annotations

import json
import time

import pytest

from tests.support.edge import BODY, auth, make_app


@pytest.fixture()
def admin(edge):
    build, keys, client = edge
    app = make_app(build)
    plain, principal = keys.create("admin", ["*"], name="root")
    return app.test_client(), plain, principal, keys, client


def test_an_admin_creates_a_key_that_works_at_once_with_its_role_and_workspaces(admin):
    c, root, _, _, client = admin
    created = c.post("/v1/keys", json={"role": "reader", "workspaces": ["ws-a"], "name": "dashboards"},
                     headers=auth(root))
    assert created.status_code == 201, created.json
    body = created.json
    assert body["key"].startswith(f"ca_{body['key_id']}_") and body["role"] == "reader"
    assert body["workspaces"] == ["ws-a"] and body["name"] == "dashboards"
    assert c.get("/v1/security-scans?workspace_id=ws-a", headers=auth(body["key"])).status_code == 200
    assert c.post("/v1/security-scans", json=BODY, headers=auth(body["key"])).status_code == 403  # a reader
    assert body["key"] not in str(client.hgetall("ca:keys"))  # only its hash is stored
    listing = c.get("/v1/keys", headers=auth(root))
    assert listing.status_code == 200
    items = {item["key_id"]: item for item in listing.json["items"]}
    listed = dict(items[body["key_id"]])
    created_at = listed.pop("created_at")
    assert listed == {"key_id": body["key_id"], "role": "reader", "workspaces": ["ws-a"], "name": "dashboards"}
    assert isinstance(created_at, float) and created_at == pytest.approx(time.time(), abs=60)
    assert "key" not in str(listing.json).replace("key_id", "")  # neither keys nor hashes are listed
    assert "hash" not in str(listing.json)


def test_revoking_stops_a_key_at_once_but_never_the_key_asking(admin):
    c, root, root_principal, keys, _ = admin
    plain, principal = keys.create("submitter", ["ws-a"])
    assert c.post("/v1/security-scans", json=BODY, headers=auth(plain)).status_code == 202
    gone = c.delete(f"/v1/keys/{principal.key_id}", headers=auth(root))
    assert gone.status_code == 204 and gone.data == b""
    assert c.post("/v1/security-scans", json=BODY, headers=auth(plain)).status_code == 401
    again = c.delete(f"/v1/keys/{principal.key_id}", headers=auth(root))
    assert again.status_code == 404 and again.json["error"]["code"] == "key_not_found"
    for bad in ("..", "ZZZZZZZZZZZZ", "0123456789ab\n", "x" * 200):
        assert c.delete(f"/v1/keys/{bad}", headers=auth(root)).status_code == 404, bad
    own = c.delete(f"/v1/keys/{root_principal.key_id}", headers=auth(root))
    assert own.status_code == 409 and own.json["error"]["code"] == "own_key"
    assert c.get("/v1/keys", headers=auth(root)).status_code == 200  # still works


def test_only_admin_keys_manage_keys(admin):
    c, _, root_principal, keys, client = admin
    before = client.hlen("ca:keys")
    for role in ("reader", "submitter", "publisher"):
        plain, _ = keys.create(role, ["*"])
        before += 1
        for method, path, kwargs in [("post", "/v1/keys", {"json": {"role": "admin", "workspaces": ["*"]}}),
                                     ("get", "/v1/keys", {}),
                                     ("delete", f"/v1/keys/{root_principal.key_id}", {})]:
            resp = getattr(c, method)(path, headers=auth(plain), **kwargs)
            assert resp.status_code == 403, (role, method, resp.json)
            assert resp.json["error"]["code"] == "forbidden"
    assert client.hlen("ca:keys") == before  # nothing created, nothing revoked
    assert c.get("/v1/keys").status_code == 401


@pytest.mark.parametrize("body, field", [
    ({"role": "root", "workspaces": ["ws-a"]}, "role"),
    ({"workspaces": ["ws-a"]}, "role"),
    ({"role": "reader", "workspaces": []}, "workspaces"),
    ({"role": "reader", "workspaces": "ws-a"}, "workspaces"),
    ({"role": "reader", "workspaces": ["ws-a\n"]}, "workspaces"),
    ({"role": "reader", "workspaces": ["Ws A"]}, "workspaces"),
    ({"role": "reader", "workspaces": ["**"]}, "workspaces"),
    ({"role": "reader", "workspaces": ["ws-a"], "name": "x\r\ny"}, "name"),
    ({"role": "reader", "workspaces": ["ws-a"], "name": "n" * 201}, "name"),
    ({"role": "reader", "workspaces": ["ws-a"], "expires": 3}, "expires"),
])
def test_a_bad_key_request_is_422_naming_the_field_and_creates_nothing(admin, body, field):
    c, root, _, _, client = admin
    before = client.hlen("ca:keys")
    resp = c.post("/v1/keys", json=body, headers=auth(root))
    assert resp.status_code == 422, resp.json
    assert resp.json["error"]["code"] == "validation_error" and field in resp.json["error"]["fields"]
    assert client.hlen("ca:keys") == before and len(client.keys("ca:key:*")) == before


@pytest.mark.parametrize("field, value", [("workspace_id", "ws-a\n"), ("component_id", "c\n"),
                                          ("assessment_id", "a1\n"), ("commit", "0123abc\n")])
def test_a_trailing_newline_never_passes_for_an_identifier(admin, field, value):
    c, root, _, _, client = admin
    resp = c.post("/v1/security-scans", json={**BODY, field: value}, headers=auth(root))
    assert resp.status_code == 422 and field in resp.json["error"]["fields"], resp.json
    assert client.zcard("ca:idx:all") == 0


def test_creating_and_revoking_keys_leaves_an_audit_line_naming_who_without_the_key(admin, caplog):
    c, root, root_principal, _, _ = admin
    with caplog.at_level("INFO", logger="app.routes.keys"):
        created = c.post("/v1/keys", json={"role": "reader", "workspaces": ["ws-a"]}, headers=auth(root)).json
        assert c.delete(f"/v1/keys/{created['key_id']}", headers=auth(root)).status_code == 204
    audit = {r.audit: r for r in caplog.records if hasattr(r, "audit")}
    assert audit["key_created"].key_id == created["key_id"] and audit["key_created"].by == root_principal.key_id
    assert audit["key_revoked"].key_id == created["key_id"] and audit["key_revoked"].by == root_principal.key_id
    assert created["key"] not in caplog.text and root not in caplog.text


@pytest.mark.parametrize("change, status", [("name", 202), ("role", 403), ("workspaces", 404)])
def test_a_key_whose_stored_record_changed_is_judged_by_the_ScanRecord(admin, change, status):
    # The remembered record no longer matches the store: the write refuses it, the key is looked up
    # afresh, and the request gets what the stored record allows.
    c, _, _, keys, client = admin
    plain, principal = keys.create("submitter", ["ws-a"], name="ci")
    assert c.post("/v1/security-scans", json=BODY, headers=auth(plain)).status_code == 202  # remembered
    record_key = f"ca:key:{principal.key_hash}"
    meta = json.loads(client.get(record_key))
    meta[change] = {"name": "ci-renamed", "role": "reader", "workspaces": ["ws-b"]}[change]
    client.set(record_key, json.dumps(meta))
    answer = c.post("/v1/security-scans", json=BODY, headers=auth(plain))
    assert answer.status_code == status, answer.json
    assert client.zcard("ca:idx:all") == (2 if status == 202 else 1)
