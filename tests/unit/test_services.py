"""The service layer called directly, as a thread or a command would: a caller (a ``Principal``) and
no Flask app or request anywhere, against a real Redis. Every check takes the caller explicitly and
fails closed: no caller is refused, another workspace's things are not found."""

from __future__ import annotations

import ast
import io
import json
import tarfile
import time
from pathlib import Path

import pytest
import redis

from app import auth
from app.errors import STATUS
from app.services.access import may_see, within
from app.services.api_keys import KeyService
from app.services.archives import store_upload
from app.services.errors import Conflict, Forbidden, Invalid, Kind, NotFound, Unauthenticated
from app.services.scans import ScanService
from app.services.uploads import UploadService
from tasks.api_keys import KeyCheck, KeyStore, Principal
from tasks.events import EventLog
from tasks.ids import new_test_id
from tasks.records import ScanRecord
from tasks.settings import Settings
from tasks.store import ScanStore
from tasks.uploads import UploadStore

ROOT = Path(__file__).resolve().parents[2]
ALPHA = Principal("a00000000001", "admin", frozenset({"alpha"}))
BETA = Principal("b00000000001", "admin", frozenset({"beta"}))
EVERYONE = Principal("e00000000001", "admin", frozenset({"*"}))
BODY = {"workspace_id": "alpha", "component_id": "c", "assessment_id": "a1", "source_type": "git",
        "git_url": "https://127.0.0.1/org/repo.git", "profile": "smoke"}


class SentTasks:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send_task(self, name: str, args: list[str] | None = None, task_id: str | None = None, **_: object) -> None:
        self.sent.append(task_id or (args or [""])[0])


class Site:
    def __init__(self, client: redis.Redis, tmp_path: Path) -> None:
        self.settings = Settings(git_allowed_hosts=("127.0.0.1",), archives_root=str(tmp_path / "archives"))
        self.client = client
        self.store = ScanStore(client)
        self.events = EventLog(client)
        self.celery = SentTasks()
        self.scans = ScanService(self.settings, self.store, self.events, self.celery)  # type: ignore[arg-type]
        self.uploads = UploadService(UploadStore(self.store, self.events), self.celery,  # type: ignore[arg-type]
                                     self.scans)
        self.keys = KeyStore(client)

    def scan(self, workspace: str, status: str = "SUCCEEDED") -> str:
        test_id = new_test_id()
        self.store.create(ScanRecord(test_id=test_id, workspace_id=workspace, component_id="c", assessment_id="a",
                                     profile="smoke", status=status))
        return test_id


@pytest.fixture()
def site(redis_url: str, tmp_path: Path):
    client = redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/14", decode_responses=True)
    client.flushdb()
    yield Site(client, tmp_path)
    client.flushdb()


def test_another_workspaces_scan_is_not_found_and_no_caller_is_refused(site):
    test_id = site.scan("beta")
    assert site.scans.get(BETA, test_id).workspace_id == "beta"
    assert site.scans.get(EVERYONE, test_id).test_id == test_id
    with pytest.raises(NotFound) as hidden:
        site.scans.get(ALPHA, test_id)
    with pytest.raises(NotFound) as missing:
        site.scans.get(ALPHA, new_test_id())
    assert hidden.value.code == missing.value.code == "scan_not_found"  # the same answer
    with pytest.raises(Unauthenticated):
        site.scans.get(None, test_id)


def test_listing_shows_only_the_callers_workspaces(site):
    mine, theirs = site.scan("alpha"), site.scan("beta")
    assert [i["test_id"] for i in site.scans.list(ALPHA, {})["items"]] == [mine]
    assert {i["test_id"] for i in site.scans.list(EVERYONE, {})["items"]} == {mine, theirs}
    with pytest.raises(NotFound) as named:
        site.scans.list(ALPHA, {"workspace_id": "beta"})
    assert named.value.code == "workspace_not_found"
    with pytest.raises(Unauthenticated):
        site.scans.list(None, {})


def test_cancel_and_upload_of_another_workspaces_scan_change_nothing(site):
    queued, done = site.scan("beta", "QUEUED"), site.scan("beta")
    with pytest.raises(NotFound):
        site.scans.cancel(ALPHA, queued)
    with pytest.raises(NotFound):
        site.uploads.request(ALPHA, done, "verified", None)
    with pytest.raises(Unauthenticated):
        site.uploads.request(None, done, "verified", None)
    assert site.store.get(queued).status == "QUEUED"
    assert site.store.get(done).upload_status is None and site.celery.sent == []
    assert site.scans.cancel(BETA, queued)["status"] == "CANCELLED"
    with pytest.raises(Conflict):
        site.scans.cancel(BETA, queued)


def test_submit_only_into_a_workspace_the_caller_holds(site):
    with pytest.raises(NotFound) as refused:
        site.scans.submit(BETA, dict(BODY))
    assert refused.value.code == "workspace_not_found"
    with pytest.raises(Unauthenticated):
        site.scans.submit(None, dict(BODY))
    assert site.client.zcard("ca:idx:all") == 0 and site.celery.sent == []
    created = site.scans.submit(ALPHA, dict(BODY))
    assert site.celery.sent == [created["test_id"]]
    assert site.scans.get(ALPHA, created["test_id"]).status == "QUEUED"
    with pytest.raises(Invalid) as host:
        site.scans.submit(ALPHA, {**BODY, "git_url": "https://elsewhere.example/org/repo.git"})
    assert host.value.fields and "git_url" in host.value.fields


class Confirmation:
    """A caller's key as a write sees it, the way app.auth.DeferredKey hands it over."""

    def __init__(self, check: KeyCheck | None, fresh: Principal) -> None:
        self.check = check
        self.fresh = fresh
        self.settled = self.confirmed = 0

    def settle(self) -> None:
        self.settled += 1
        self.check = None

    def confirm(self) -> Principal:
        self.confirmed += 1
        self.check = None
        return self.fresh


def test_a_key_changed_since_it_was_remembered_is_confirmed_afresh_and_judged_by_its_record(site):
    plain, principal = site.keys.create("submitter", ["alpha"])
    current = site.client.get(f"ca:key:{principal.key_hash}")
    check = KeyCheck(principal.key_hash, current, repr(1 / 60000), 5, int(time.time() * 1000))
    confirmed = Confirmation(check, principal)
    site.scans.submit(principal, dict(BODY), confirmed)  # the write confirms the key itself
    assert (confirmed.settled, confirmed.confirmed) == (1, 0)
    # The record remembered no longer matches: the key is confirmed afresh, and a fresh record
    # that no longer holds the workspace is refused with nothing written.
    stale = KeyCheck(principal.key_hash, json.dumps({"stale": True}), repr(1 / 60000), 5, int(time.time() * 1000))
    moved = Confirmation(stale, Principal(principal.key_id, "submitter", frozenset({"beta"})))
    with pytest.raises(NotFound):
        site.scans.submit(principal, dict(BODY), moved)
    assert moved.confirmed == 1 and site.client.zcard("ca:idx:all") == 1
    renamed = Confirmation(KeyCheck(principal.key_hash, "{}", repr(1 / 60000), 5, int(time.time() * 1000)),
                           principal)
    site.scans.submit(principal, dict(BODY), renamed)
    assert renamed.confirmed == 1 and site.client.zcard("ca:idx:all") == 2


def _tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("app.py")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"1\n"))
    return buf.getvalue()


def test_uploaded_archives_belong_to_the_callers_workspaces_and_never_to_no_caller(site):
    with pytest.raises(NotFound):
        store_upload(site.settings, ALPHA, "src.tar.gz", io.BytesIO(_tar()), "beta")
    with pytest.raises(Unauthenticated):
        store_upload(site.settings, None, "src.tar.gz", io.BytesIO(_tar()))
    mine = store_upload(site.settings, ALPHA, "src.tar.gz", io.BytesIO(_tar()))
    assert mine["workspaces"] == ["alpha"]
    everywhere = store_upload(site.settings, EVERYONE, "src.tar.gz", io.BytesIO(_tar()))
    assert everywhere["workspaces"] == ["*"]

    def scan(principal, workspace, upload):
        body = {**BODY, "workspace_id": workspace, "source_type": "archive", "archive_path": upload["archive_path"]}
        del body["git_url"]
        return site.scans.submit(principal, body)

    assert scan(ALPHA, "alpha", mine)["workspace_id"] == "alpha"
    assert scan(EVERYONE, "beta", everywhere)["workspace_id"] == "beta"
    for principal, workspace, upload in [(BETA, "beta", mine), (ALPHA, "alpha", everywhere)]:
        with pytest.raises(Invalid) as unknown:
            scan(principal, workspace, upload)
        assert unknown.value.code == "archive_not_found"
    assert len(site.celery.sent) == 2


def test_key_management_stays_within_the_callers_workspaces(site):
    keys = KeyService(site.keys)
    _, other = site.keys.create("reader", ["beta"])
    with pytest.raises(Forbidden) as wider:
        keys.create(ALPHA, "reader", ["alpha", "beta"], "")
    assert wider.value.code == "key_scope_exceeded"
    created = keys.create(ALPHA, "reader", ["alpha"], "ci")
    assert [k["key_id"] for k in keys.list(ALPHA)["items"]] == [created["key_id"]]
    with pytest.raises(NotFound):
        keys.revoke(ALPHA, other.key_id)
    with pytest.raises(Unauthenticated):
        keys.list(None)
    assert site.keys.authenticate(created["key"]) is not None and len(site.keys.list()) == 2


def test_an_authorisation_check_outside_a_request_fails_closed():
    # No Flask app, no request: nobody is the caller, and nobody sees anything.
    assert auth.current_principal() is None
    with pytest.raises(Unauthenticated):
        auth.caller()
    assert not may_see(None, "alpha") and not may_see(None, None)
    assert not within(None, []) and not within(None, ["alpha"])
    assert may_see(ALPHA, "alpha") and not may_see(ALPHA, "beta") and may_see(EVERYONE, "beta")


def test_every_kind_of_service_error_has_an_http_status():
    assert set(STATUS) == set(Kind)


def test_services_know_nothing_of_the_web_framework():
    web = {"flask", "flask_sock", "werkzeug", "app.auth", "app.errors", "app.routes"}
    for path in (ROOT / "app/services").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert not any(name == w or name.startswith(w + ".") for w in web), (path.name, name)
