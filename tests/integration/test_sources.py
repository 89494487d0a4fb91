"""Every source type end to end on real servers: git over smart HTTP with credentials (and a canary
token that must never appear anywhere), directories, each archive format, uploaded archives,
hostile archives and paths, artifact downloads, and cancel."""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import websocket

from tests.conftest import FIXTURES
from tests.support.githttp import GitHttpServer
from tests.support.gitrepos import make_repo
from tests.support.service import Service, base_env
from tests.support.ws import read_stream

pytestmark = pytest.mark.integration
CANARY = "canary-" + secrets.token_hex(12)
FIXTURE_FILES = {p.relative_to(FIXTURES / "vulnerable-python").as_posix(): p.read_bytes()
                 for p in (FIXTURES / "vulnerable-python").rglob("*") if p.is_file()}


def _db(redis_url: str, db: int) -> str:
    # A Redis database of its own: these services must not share a queue with other tests' workers.
    return redis_url.rsplit("/", 1)[0] + f"/{db}"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("sources")
    roots = tmp / "roots"
    roots.mkdir()
    creds = tmp / "git-credentials.json"
    creds.write_text(json.dumps({"ws-cred": {"username": "ci-bot", "token": CANARY, "hosts": ["127.0.0.1"]}}))
    return {"tmp": tmp, "roots": roots, "creds": creds}


@pytest.fixture(scope="module")
def git_http(env: dict[str, Path]) -> Iterator[GitHttpServer]:
    repo = make_repo(env["tmp"] / "git", "vuln", {k: v.decode() for k, v in FIXTURE_FILES.items()})
    server = GitHttpServer({"vuln": repo}, "ci-bot", CANARY).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def svc(env: dict[str, Path], redis_url: str) -> Iterator[Service]:
    tmp = env["tmp"]
    service = Service(env=base_env(
        tmp, _db(redis_url, 7),
        CERTUS_ASSURANCE_ALLOWED_SOURCE_ROOTS=str(env["roots"]),
        CERTUS_ASSURANCE_ARCHIVES_ROOT=str(tmp / "uploads"),
        CERTUS_ASSURANCE_GIT_CREDENTIALS_FILE=str(env["creds"]),
        CERTUS_ASSURANCE_ARCHIVE_FILE_MAX_BYTES=str(2 * 1024 * 1024),
        CERTUS_ASSURANCE_ARCHIVE_MAX_RATIO="50",
        CERTUS_ASSURANCE_LEASE_SECONDS="3",
    ), workdir=tmp)
    try:
        service.start_worker("src1", concurrency=2)
        service.start_api()
        service.wait_workers(1)
        yield service
    finally:
        service.stop()


def _assert_no_canary(svc: Service, test_id: str, extra: list[str] = ()) -> None:  # type: ignore[assignment]
    texts = [json.dumps(svc.status(test_id)),
             json.dumps(svc.http.get(svc.url(f"/v1/security-scans/{test_id}/events"), params={"limit": 5000}).json()),
             *extra]
    bundle = svc.artifact_root / test_id
    for path in bundle.rglob("*"):
        if path.is_file():
            texts.append(path.read_text(errors="replace"))
    for log in svc.workdir.glob("*.log"):
        texts.append(log.read_text(errors="replace"))
    assert (bundle / "scan.json").is_file() and (bundle / "logs/runner.log").is_file()
    for text in texts:
        assert CANARY not in text


def _tar_bytes(files: dict[str, bytes], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _clone_phase(events: list[dict]) -> dict:
    return next(e for e in events if e["type"] == "phase" and e["phase"] == "clone" and "hash" in e)


def test_git_smart_http_with_workspace_credentials(svc, git_http):
    resp = svc.submit(workspace_id="ws-cred", git_url=git_http.url("vuln"), profile="smoke")
    assert resp.status_code == 202, resp.text
    test_id = resp.json()["test_id"]
    stream = read_stream(svc.ws_url(f"/v1/security-scans/{test_id}/stream"), headers=svc.ws_headers, timeout=120)
    record = svc.status(test_id)
    assert record["status"] == "SUCCEEDED", record["errors"]
    clone = _clone_phase(stream.events)
    assert clone["commit"] == record["resolved_commit"] and clone["branch"] == "main"
    scan_json = json.loads((svc.artifact_root / test_id / "scan.json").read_text())
    assert scan_json["source"]["hash"] == clone["hash"] and len(clone["hash"]) == 64
    assert stream.events[-1]["summary"]["by_tool"]["bandit"]["high"] >= 1
    # the token went to the server (it answered 401 without it) and nowhere else
    assert any(a.startswith("Basic ") for a in git_http.seen_auth)
    _assert_no_canary(svc, test_id, [json.dumps(stream.events)])


def test_git_http_failures_have_codes_and_never_echo_the_token(svc, git_http):
    cases = {
        "missing": (dict(workspace_id="ws-cred", git_url=git_http.url("nothing-here")), "repository_not_found"),
        "redirect": (dict(workspace_id="ws-cred", git_url=git_http.url("moved/vuln")), "git_redirect_not_allowed"),
        "no-creds": (dict(workspace_id="ws-none", git_url=git_http.url("vuln")), "git_auth_failed"),
    }
    ids = {}
    for name, (payload, _) in cases.items():
        resp = svc.submit(profile="smoke", **payload)
        assert resp.status_code == 202, resp.text
        ids[name] = resp.json()["test_id"]
    for name, (_, code) in cases.items():
        record = svc.wait_done(ids[name])
        assert record["status"] == "FAILED", name
        assert record["errors"][0]["code"] == code, (name, record["errors"])
        _assert_no_canary(svc, ids[name])


def test_directory_source_is_copied_without_links_out(svc, env):
    proj = env["roots"] / "dir-proj"
    for rel, data in FIXTURE_FILES.items():
        (proj / rel).parent.mkdir(parents=True, exist_ok=True)
        (proj / rel).write_bytes(data)
    (env["tmp"] / "outside.py").write_text("import pickle\npickle.loads(open('x','rb').read())\n")
    os.symlink(env["tmp"] / "outside.py", proj / "leak.py")
    resp = svc.submit(source_type="directory", directory_path=str(proj), profile="smoke")
    assert resp.status_code == 202, resp.text
    test_id = resp.json()["test_id"]
    record = svc.wait_done(test_id)
    assert record["status"] == "SUCCEEDED", record["errors"]
    assert {"code": "source_entries_skipped", "message": "1 links leaving the folder were not copied"} \
        in record["warnings"]
    sarif = json.loads((svc.artifact_root / test_id / "reports/sast/bandit.sarif.json").read_text())
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in sarif["runs"][0]["results"]}
    assert "app.py" in uris and "leak.py" not in uris
    events = svc.http.get(svc.url(f"/v1/security-scans/{test_id}/events")).json()["events"]
    assert _clone_phase(events)["hash"] == record["source_hash"]
    os.symlink(env["tmp"], env["roots"] / "escape-link")
    for hostile in (str(env["tmp"]), f"{env['roots']}/../", f"{env['roots']}/dir-proj/../../",
                    str(env["roots"] / "escape-link"), "roots/dir-proj", "/etc"):
        resp = svc.submit(source_type="directory", directory_path=hostile, profile="smoke")
        assert resp.status_code == 422 and resp.json()["error"]["code"] == "path_not_allowed", hostile
    for hostile in (f"{env['roots']}/../outside.tar", str(env["roots"] / "escape-link" / "x.tar"), "x.tar",
                    "upload_../../etc/passwd"):
        resp = svc.submit(source_type="archive", archive_path=hostile, profile="smoke")
        assert resp.status_code == 422 and resp.json()["error"]["code"] == "path_not_allowed", hostile


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz", ".tgz", ".tar.bz2", ".zip"])
def test_archive_source_formats(svc, env, suffix):
    mode = {".tar": "w", ".tar.gz": "w:gz", ".tgz": "w:gz", ".tar.bz2": "w:bz2"}.get(suffix)
    data = _zip_bytes(FIXTURE_FILES) if suffix == ".zip" else _tar_bytes(FIXTURE_FILES, mode or "w")
    path = env["roots"] / f"src{suffix}"
    path.write_bytes(data)
    resp = svc.submit(source_type="archive", archive_path=str(path), profile="smoke")
    assert resp.status_code == 202, resp.text
    test_id = resp.json()["test_id"]
    record = svc.wait_done(test_id)
    assert record["status"] == "SUCCEEDED", record["errors"]
    assert record["summary"]["by_tool"]["bandit"]["high"] >= 1
    scan_json = json.loads((svc.artifact_root / test_id / "scan.json").read_text())
    assert scan_json["source"]["hash"] == hashlib.sha256(data).hexdigest() == record["source_hash"]


def _upload(svc: Service, name: str, data: bytes) -> requests.Response:
    return svc.http.post(svc.url("/v1/security-scans/upload-archive"), files={"file": (name, data)}, timeout=30)


def test_upload_archive_then_scan_it(svc):
    data = _tar_bytes(FIXTURE_FILES)
    resp = _upload(svc, "../../project.tgz", data)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["archive_hash"] == hashlib.sha256(data).hexdigest()
    assert body["size"] == len(data) and body["filename"] == "project.tgz"
    assert body["archive_path"].startswith("upload_")
    scan = svc.submit(source_type="archive", archive_path=body["archive_path"], profile="smoke")
    assert scan.status_code == 202, scan.text
    record = svc.wait_done(scan.json()["test_id"])
    assert record["status"] == "SUCCEEDED", record["errors"]
    assert record["source_hash"] == body["archive_hash"]


def test_upload_archive_refusals(svc):
    bad_type = _upload(svc, "project.rar", b"Rar!")
    assert bad_type.status_code == 422 and bad_type.json()["error"]["code"] == "archive_format_unsupported"
    garbage = _upload(svc, "project.tar.gz", b"not an archive at all")
    assert garbage.status_code == 422 and garbage.json()["error"]["code"] == "archive_invalid"
    huge = _upload(svc, "big.tar", os.urandom(3 * 1024 * 1024))
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "payload_too_large"
    missing = svc.http.post(svc.url("/v1/security-scans/upload-archive"), data={"x": "1"}, files={"y": ("a", b"")})
    assert missing.status_code == 422 and missing.json()["error"]["code"] == "validation_error"
    unknown = svc.submit(source_type="archive", archive_path="upload_" + "0" * 32, profile="smoke")
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "archive_not_found"
    # the 1 MiB cap still holds for every other endpoint
    big_json = svc.http.post(svc.url("/v1/security-scans"), data=b"{" + b" " * (1024 * 1024 + 10) + b"}",
                             headers={"Content-Type": "application/json"})
    assert big_json.status_code == 413


def _hostile_tar(kind: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        ok = tarfile.TarInfo("app.py")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"1\n"))
        info = tarfile.TarInfo({"traversal": "../../evil.py", "absolute": "/tmp/evil.py"}.get(kind, "x"))
        if kind in ("traversal", "absolute"):
            info.size = 2
            tar.addfile(info, io.BytesIO(b"1\n"))
        elif kind == "symlink":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc"
            tar.addfile(info)
        elif kind == "hardlink":
            info.type, info.linkname = tarfile.LNKTYPE, "../../etc/passwd"
            tar.addfile(info)
        elif kind == "device":
            info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
            tar.addfile(info)
        elif kind == "bomb":
            data = b"\0" * (1024 * 1024)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_hostile_uploaded_archives_fail_with_stable_codes(svc):
    expected = {"traversal": "archive_path_traversal", "absolute": "archive_absolute_path",
                "symlink": "archive_link_escape", "hardlink": "archive_link_escape",
                "device": "archive_special_file", "bomb": "archive_ratio_exceeded"}
    ids = {}
    for kind in expected:
        up = _upload(svc, f"{kind}.tar.gz", _hostile_tar(kind))
        assert up.status_code == 201, up.text
        ids[kind] = svc.submit(source_type="archive", archive_path=up.json()["archive_path"],
                               profile="smoke").json()["test_id"]
    for kind, code in expected.items():
        record = svc.wait_done(ids[kind])
        assert record["status"] == "FAILED" and record["errors"][0]["code"] == code, (kind, record["errors"])
    assert not Path("/tmp/evil.py").exists()
    assert not list((svc.workdir / "work").glob("*/evil.py")) and not list(svc.workdir.glob("**/evil.py"))


def test_links_that_dangle_loop_or_leave_once_followed_are_removed_from_every_source(svc, env):
    marker = "beside-the-workspaces-" + secrets.token_hex(6)
    (env["tmp"] / "work" / "outside-marker.py").write_text(f"import os\nos.system('echo {marker}')\n")
    # directory: each link's text stays inside the folder; followed, d1/d2/up2 is the folder itself,
    # and two '..' from there reach WORK_ROOT, beside the scan's workspace
    proj = env["roots"] / "link-proj"
    (proj / "d1" / "d2").mkdir(parents=True)
    (proj / "pkg").mkdir()
    (proj / "app.py").write_bytes(FIXTURE_FILES["app.py"])
    os.symlink("../..", proj / "d1" / "d2" / "up2")
    os.symlink("../d1/d2/up2/../../outside-marker.py", proj / "pkg" / "esc.py")
    os.symlink("../app.py", proj / "pkg" / "alias.py")
    # archive: links archive.py lets through (their text stays inside) that dangle or loop
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        app = tarfile.TarInfo("app.py")
        app.size = len(FIXTURE_FILES["app.py"])
        tar.addfile(app, io.BytesIO(FIXTURE_FILES["app.py"]))
        for name, target in {"gone.py": "missing.py", "loop-a.py": "loop-b.py", "loop-b.py": "loop-a.py",
                             "self": ".", "alias.py": "app.py"}.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    (env["roots"] / "links.tgz").write_bytes(buf.getvalue())
    sources = {"directory": ({"directory_path": str(proj)}, "2 symbolic links were removed (1 leading outside "
                             "the source, 1 looping): d1/d2/up2, pkg/esc.py"),
               "archive": ({"archive_path": str(env["roots"] / "links.tgz")}, "4 symbolic links were removed "
                           "(1 dangling, 3 looping): gone.py, loop-a.py, loop-b.py, self")}
    for kind, (fields, message) in sources.items():
        resp = svc.submit(source_type=kind, profile="smoke", **fields)
        assert resp.status_code == 202, resp.text
        test_id = resp.json()["test_id"]
        record = svc.wait_done(test_id)
        assert record["status"] == "SUCCEEDED", record["errors"]
        assert {"code": "symlinks_removed", "message": message} in record["warnings"], kind
        bundle = svc.artifact_root / test_id
        sarif = json.loads((bundle / "reports/sast/bandit.sarif.json").read_text())
        uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in sarif["runs"][0]["results"]}
        assert "app.py" in uris and ("pkg/alias.py" if kind == "directory" else "alias.py") in uris
        assert not any(marker in p.read_text(errors="replace") for p in bundle.rglob("*") if p.is_file())


def _raw_get(svc: Service, raw_path: str) -> requests.Response:
    """GET a path exactly as written (no client-side normalisation of `..` or `%2e`)."""
    req = svc.http.prepare_request(requests.Request("GET", svc.url("/")))  # with the session's key
    req.url = svc.base_url + raw_path
    return svc.http.send(req, timeout=10)


def test_artifacts_list_download_and_confinement(svc, env):
    path = env["roots"] / "artifacts.tar"
    path.write_bytes(_tar_bytes(FIXTURE_FILES, "w"))
    test_id = svc.submit(source_type="archive", archive_path=str(path), profile="smoke").json()["test_id"]
    assert svc.wait_done(test_id)["status"] == "SUCCEEDED"
    bundle = svc.artifact_root / test_id
    listing = svc.http.get(svc.url(f"/v1/security-scans/{test_id}/artifacts")).json()
    by_path = {f["path"]: f for f in listing["files"]}
    assert "scan.json" in by_path and "reports/sast/bandit.sarif.json" in by_path
    for rel, item in by_path.items():
        data = (bundle / rel).read_bytes()
        assert item["size"] == len(data) and item["sha256"] == hashlib.sha256(data).hexdigest()
    got = svc.http.get(svc.url(f"/v1/security-scans/{test_id}/artifacts/reports/sast/bandit.sarif.json"))
    assert got.status_code == 200 and got.content == (bundle / "reports/sast/bandit.sarif.json").read_bytes()
    # a link planted in the bundle is neither listed nor served
    os.symlink("/etc/passwd", bundle / "passwd")
    os.symlink("/etc", bundle / "etcdir")
    listing = svc.http.get(svc.url(f"/v1/security-scans/{test_id}/artifacts")).json()
    assert {"passwd", "etcdir"}.isdisjoint({f["path"].split("/")[0] for f in listing["files"]})
    base = f"/v1/security-scans/{test_id}/artifacts/"
    hostile = {
        "../../../etc/passwd": (400, "artifact_path_traversal"),
        "reports/../../scan.json": (400, "artifact_path_traversal"),
        "%2e%2e/%2e%2e/etc/passwd": (400, "artifact_path_traversal"),
        "..%2f..%2fetc%2fpasswd": (400, "artifact_path_traversal"),
        "%252e%252e/scan.json": (400, "artifact_path_invalid"),
        "/etc/passwd": (400, "artifact_path_absolute"),
        "%2fetc%2fpasswd": (400, "artifact_path_absolute"),
        "passwd": (403, "artifact_path_symlink"),
        "etcdir/passwd": (403, "artifact_path_symlink"),
        "nothing.json": (404, "artifact_not_found"),
        "reports": (404, "artifact_not_found"),
    }
    for raw, (status, code) in hostile.items():
        resp = _raw_get(svc, base + raw)
        assert resp.status_code == status, (raw, resp.status_code, resp.text[:200])
        assert resp.json()["error"]["code"] == code, raw
        assert "root:" not in resp.text
    assert svc.http.get(svc.url("/v1/security-scans/test_000000000000/artifacts")).status_code == 404
    assert svc.http.get(svc.url("/v1/security-scans/nope/artifacts/scan.json")).json()["error"]["code"] \
        == "scan_not_found"


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if text.encode() in cmdline or text in cwd:
            found.append(int(pid))
    return found


def test_cancel_while_a_tool_runs(svc, env):
    # Enough code that bandit runs for a while on this machine.
    proj = env["roots"] / "big-proj"
    body = "".join(f"def f{i}(x):\n    import subprocess\n    return subprocess.call(x, shell=True)\n\n"
                   for i in range(40))
    for i in range(2500):
        (proj / f"pkg{i % 25}").mkdir(parents=True, exist_ok=True)
        (proj / f"pkg{i % 25}" / f"m{i}.py").write_text(body)
    test_id = svc.submit(source_type="directory", directory_path=str(proj), profile="smoke").json()["test_id"]
    ws = websocket.create_connection(svc.ws_url(f"/v1/security-scans/{test_id}/stream"), timeout=120,
                                     header=svc.ws_headers)
    events = []
    try:
        while True:
            event = json.loads(ws.recv())
            events.append(event)
            if event["type"] == "tool_start":
                break
            assert event["type"] != "scan_complete", events
        workspace = next(svc.workdir.joinpath("work").glob(f"{test_id}.*"))
        # tool_start is sent just before the process starts: wait until it shows
        deadline = time.monotonic() + 30
        while not _processes_mentioning(str(workspace)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _processes_mentioning(str(workspace)), "bandit should be running in the workspace"
        resp = svc.http.post(svc.url(f"/v1/security-scans/{test_id}/cancel"))
        assert resp.status_code == 202 and resp.json()["cancel_requested"] is True
        while events[-1]["type"] != "scan_complete":
            events.append(json.loads(ws.recv()))
    finally:
        ws.close()
    assert events[-1]["status"] == "CANCELLED"
    assert any(e["type"] == "error" and e["code"] == "cancelled" for e in events)
    record = svc.wait_done(test_id, timeout=60)
    assert record["status"] == "CANCELLED" and record["errors"][0]["code"] == "cancelled"
    assert not workspace.exists()
    assert _processes_mentioning(str(workspace)) == []
    assert not any(e["type"] == "tool_complete" and e.get("exit_code") == 0 for e in events)
    again = svc.http.post(svc.url(f"/v1/security-scans/{test_id}/cancel"))
    assert again.status_code == 409 and again.json()["error"]["code"] == "scan_finished"


def test_cancel_of_a_queued_scan(env, redis_url, git_http):
    tmp = env["tmp"] / "queued"
    tmp.mkdir()
    # An API with no worker: the scan stays queued until cancelled.
    service = Service(env=base_env(tmp, _db(redis_url, 8)), workdir=tmp)
    try:
        service.start_api()
        test_id = service.submit(git_url=git_http.url("vuln"), profile="smoke").json()["test_id"]
        assert service.status(test_id)["status"] == "QUEUED"
        got: list = []
        watcher = threading.Thread(target=lambda: got.append(read_stream(
            service.ws_url(f"/v1/security-scans/{test_id}/stream"), headers=service.ws_headers, timeout=60)))
        watcher.start()
        time.sleep(0.5)
        resp = service.http.post(service.url(f"/v1/security-scans/{test_id}/cancel"))
        assert resp.status_code == 202 and resp.json()["status"] == "CANCELLED"
        watcher.join(60)
        stream = got[0]
        assert stream.close_code == 1000 and stream.types[-1] == "scan_complete"
        assert stream.events[-1]["status"] == "CANCELLED"
        record = service.status(test_id)
        assert record["status"] == "CANCELLED" and record["completed_at"]
        again = service.http.post(service.url(f"/v1/security-scans/{test_id}/cancel"))
        assert again.status_code == 409 and again.json()["error"]["code"] == "scan_finished"
    finally:
        service.stop()


def test_git_protocol_source_records_commit_branch_and_hash(svc, vulnerable_repo):
    test_id = svc.submit(git_url=vulnerable_repo["url"], branch="feature", profile="smoke").json()["test_id"]
    record = svc.wait_done(test_id)
    assert record["status"] == "SUCCEEDED", record["errors"]
    events = svc.http.get(svc.url(f"/v1/security-scans/{test_id}/events")).json()["events"]
    clone = _clone_phase(events)
    assert clone["commit"] == vulnerable_repo["feature_head"] and clone["branch"] == "feature"
    assert clone["hash"] == record["source_hash"]
    scan_json = json.loads((svc.artifact_root / test_id / "scan.json").read_text())
    assert scan_json["source"]["hash"] == clone["hash"]
    assert scan_json["source"]["resolved_commit"] == vulnerable_repo["feature_head"]
