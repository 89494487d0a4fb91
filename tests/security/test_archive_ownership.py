"""An uploaded archive belongs to a workspace: a tenant who learns another's upload id (it is in
that tenant's scan records) cannot scan it. The upload records the workspace the client names (one
its key holds) or the key's own; a scan of any other workspace is told the id is unknown, the same
answer as for an id that never existed, and nothing is written."""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
from pathlib import Path

import pytest

from tests.support.edge import BODY, auth, edge, make_app  # noqa: F401 - edge is a fixture
from workers.retention import Retention


def _tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("app.py")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"1\n"))
    return buf.getvalue()


@pytest.fixture()
def site(edge, tmp_path):  # noqa: F811
    build, keys, client = edge
    uploads = tmp_path / "uploads"
    app = make_app(build, archives_root=str(uploads))
    plain = {name: keys.create(role, workspaces)[0] for name, role, workspaces in [
        ("alpha", "submitter", ["alpha"]), ("beta", "submitter", ["beta"]),
        ("both", "submitter", ["alpha", "beta"]), ("root", "admin", ["*"])]}
    return app, app.test_client(), plain, uploads, client


def upload(c, key, **form):
    return c.post("/v1/security-scans/upload-archive", headers=auth(key), content_type="multipart/form-data",
                  data={"file": (io.BytesIO(_tar()), "src.tar.gz"), **form})


def scan(c, key, workspace, archive_path):
    body = {**BODY, "workspace_id": workspace, "source_type": "archive", "archive_path": archive_path}
    del body["git_url"]
    return c.post("/v1/security-scans", json=body, headers=auth(key))


def _meta(uploads, archive_id):
    return json.loads((uploads / f"{archive_id}.json").read_text())


def test_another_workspace_cannot_scan_an_upload_by_its_id(site):
    app, c, key, uploads, client = site
    stored = upload(c, key["alpha"])
    assert stored.status_code == 201, stored.json
    archive_id = stored.json["archive_path"]
    assert stored.json["workspaces"] == ["alpha"] and _meta(uploads, archive_id)["workspaces"] == ["alpha"]
    unknown = scan(c, key["beta"], "beta", "upload_" + "0" * 32)
    stolen = scan(c, key["beta"], "beta", archive_id)
    assert stolen.status_code == unknown.status_code == 422
    assert stolen.json["error"]["code"] == unknown.json["error"]["code"] == "archive_not_found"
    assert stolen.json["error"]["message"] == unknown.json["error"]["message"]
    assert stolen.json["error"]["fields"] == unknown.json["error"]["fields"]
    # nor can a key holding both workspaces carry it into beta
    assert scan(c, key["both"], "beta", archive_id).json["error"]["code"] == "archive_not_found"
    assert client.zcard("ca:idx:all") == 0 and app.sent == []
    assert scan(c, key["alpha"], "alpha", archive_id).status_code == 202
    assert scan(c, key["both"], "alpha", archive_id).status_code == 202
    assert len(app.sent) == 2


def test_the_client_names_the_workspace_and_the_key_must_hold_it(site):
    app, c, key, uploads, _ = site
    for_beta = upload(c, key["both"], workspace_id="beta")
    assert for_beta.status_code == 201 and for_beta.json["workspaces"] == ["beta"]
    archive_id = for_beta.json["archive_path"]
    assert scan(c, key["both"], "alpha", archive_id).json["error"]["code"] == "archive_not_found"
    assert scan(c, key["beta"], "beta", archive_id).status_code == 202
    before = sorted(uploads.iterdir())
    elsewhere = upload(c, key["alpha"], workspace_id="beta")
    assert elsewhere.status_code == 404 and elsewhere.json["error"]["code"] == "workspace_not_found"
    for bad in ("Beta", "beta\n", "*", "../x", "be\u202eta"):
        refused = upload(c, key["both"], workspace_id=bad)
        assert refused.status_code == 422, (bad, refused.json)
        assert "workspace_id" in refused.json["error"]["fields"]
    extra = upload(c, key["both"], workspace_id="beta", surprise="1")
    assert extra.status_code == 422 and "surprise" in extra.json["error"]["fields"]
    assert sorted(uploads.iterdir()) == before  # nothing stored


def test_an_upload_without_a_workspace_belongs_to_the_keys_workspaces(site):
    app, c, key, _, _ = site
    both = upload(c, key["both"]).json
    assert both["workspaces"] == ["alpha", "beta"]
    assert scan(c, key["alpha"], "alpha", both["archive_path"]).status_code == 202
    assert scan(c, key["beta"], "beta", both["archive_path"]).status_code == 202
    # an every-workspace key's upload serves only every-workspace keys, in any workspace
    everywhere = upload(c, key["root"]).json
    assert everywhere["workspaces"] == ["*"]
    assert scan(c, key["alpha"], "alpha", everywhere["archive_path"]).json["error"]["code"] == "archive_not_found"
    assert scan(c, key["root"], "alpha", everywhere["archive_path"]).status_code == 202
    # a named workspace binds even an every-workspace key
    named = upload(c, key["root"], workspace_id="alpha").json
    assert scan(c, key["root"], "beta", named["archive_path"]).json["error"]["code"] == "archive_not_found"
    assert scan(c, key["alpha"], "alpha", named["archive_path"]).status_code == 202


def test_an_upload_stored_before_workspaces_were_recorded_serves_only_every_workspace_keys(site):
    _, c, key, uploads, _ = site
    archive_id = upload(c, key["alpha"]).json["archive_path"]
    meta = _meta(uploads, archive_id)
    del meta["workspaces"]
    (uploads / f"{archive_id}.json").write_text(json.dumps(meta))
    assert scan(c, key["alpha"], "alpha", archive_id).json["error"]["code"] == "archive_not_found"
    assert scan(c, key["root"], "alpha", archive_id).status_code == 202


def test_retention_still_prunes_old_uploads(site):
    app, c, key, uploads, client = site
    archive_id = upload(c, key["alpha"]).json["archive_path"]
    settings = app.extensions["certus"].settings
    old = time.time() - settings.archive_retention_seconds - 60
    for path in uploads.glob(f"{archive_id}*"):
        os.utime(path, (old, old))
    removed = Retention(settings, client).prune_uploads()
    assert sorted(Path(p).name for p in removed) == [f"{archive_id}.json", f"{archive_id}.tar.gz"]
    assert list(uploads.iterdir()) == []
