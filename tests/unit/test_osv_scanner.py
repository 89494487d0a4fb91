"""The osv scanner on the vulnerable-deps fixture against the real 2024-10-10 PyPI snapshot, the
lock-file parsers, and the refresh command against a loopback server (and with no server)."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from stack.ports import free_port
from tests.support.scanrun import FIXTURES, copy_fixture, run_scanner
from workers.osv.database import Database
from workers.osv.lockfiles import inventory
from workers.osv.matcher import match
from workers.osv.refresh import RefreshError, refresh
from workers.scanners.osv import REPORT_PATH, Osv

SNAPSHOT = FIXTURES / "osv"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def source(tmp_path):
    return copy_fixture("vulnerable-deps", tmp_path / "src")


def test_inventory_reads_every_lock_format(source):
    inv = inventory(source)
    assert inv.files == ["Pipfile.lock", "poetry.lock", "requirements.txt", "uv.lock", "web/package-lock.json"]
    got = {(d.ecosystem, d.name, d.version, d.path) for d in inv.dependencies}
    assert {("PyPI", "requests", "2.19.1", "requirements.txt"), ("PyPI", "urllib3", "1.26.17", "requirements.txt"),
            ("PyPI", "PyYAML", "5.3", "requirements.txt"), ("PyPI", "flask", "2.2.2", "poetry.lock"),
            ("PyPI", "werkzeug", "2.2.2", "poetry.lock"), ("PyPI", "jinja2", "2.10", "Pipfile.lock"),
            ("PyPI", "pillow", "9.0.0", "uv.lock"), ("npm", "lodash", "4.17.15", "web/package-lock.json")} <= got
    assert not any(d.name == "demo-app" for d in inv.dependencies)  # uv's editable project itself
    assert not any(d.name == "demo-web" for d in inv.dependencies)  # npm's root package
    assert inv.unpinned == [{"path": "requirements.txt", "line": 7, "requirement": "flask>=2.0"}]
    requests = next(d for d in inv.dependencies if d.name == "requests")
    assert requests.line == 2 and requests.snippet == "requests==2.19.1"


def test_hostile_lock_files_are_skipped_or_reported(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "requirements.txt").write_text("requests==2.19.1\n")
    src = tmp_path / "src"
    src.mkdir()
    (src / "requirements.txt").symlink_to(outside / "requirements.txt")
    (src / "linked").symlink_to(outside, target_is_directory=True)
    (src / "poetry.lock").write_text("[[package]\nname = broken")
    (src / "package-lock.json").write_text("{not json")
    inv = inventory(src)
    assert inv.dependencies == []
    assert sorted(e["path"] for e in inv.errors) == ["package-lock.json", "poetry.lock"]


def test_matches_against_the_snapshot():
    db = Database.open(SNAPSHOT)
    inv = inventory(FIXTURES / "vulnerable-deps")
    found = {(v["package"], v["id"]) for v in match(db, inv.dependencies)}
    assert found == {
        ("requests", "PYSEC-2018-28"), ("requests", "PYSEC-2023-74"),
        ("urllib3", "PYSEC-2023-212"),  # 1.26.17 is the fix of PYSEC-2023-192, not of -212
        ("PyYAML", "PYSEC-2020-96"), ("PyYAML", "PYSEC-2021-142"),
        ("flask", "PYSEC-2023-62"),
        ("werkzeug", "PYSEC-2023-57"), ("werkzeug", "PYSEC-2023-58"), ("werkzeug", "PYSEC-2023-221"),
        ("jinja2", "PYSEC-2019-217"), ("jinja2", "PYSEC-2021-66"),
        ("pillow", "PYSEC-2022-168"), ("pillow", "PYSEC-2022-42979"), ("pillow", "PYSEC-2023-175"),
        ("pillow", "PYSEC-2023-227"),
    }
    described = db.describe()["ecosystems"]["PyPI"]
    assert described["advisories"] == 2661
    assert described["newest_advisory_modified"] == "2024-10-10T17:22:00Z"
    assert described["age_days"] > 700 and described["source"].startswith("unknown")


def test_osv_scanner_writes_sca_sarif_with_database_age(source, tmp_path):
    scanner = Osv(str(SNAPSHOT))
    assert scanner.unavailable_reason() is None
    output, result = run_scanner(scanner, source, tmp_path / "scratch")
    assert result.exit_code == 0
    assert output.sarif is False and set(output.files) == {REPORT_PATH}
    assert len(output.findings) == 15
    urllib3 = next(f for f in output.findings if f.rule_id == "PYSEC-2023-212")
    assert urllib3.severity == "medium" and urllib3.properties["cvss_score"] == 4.2
    assert urllib3.path == "requirements.txt" and urllib3.line == 3 and urllib3.snippet == "urllib3==1.26.17"
    assert "CVE-2023-45803" in urllib3.message and "1.26.18" in urllib3.message
    requests = next(f for f in output.findings if f.rule_id == "PYSEC-2018-28")
    assert requests.severity == "high" and requests.properties["severity_source"] == "unrated"
    doc = json.loads(output.files[REPORT_PATH])
    run = doc["runs"][0]
    assert doc["version"] == "2.1.0" and len(run["results"]) == 15
    assert all(r["partialFingerprints"] for r in run["results"])
    db = run["properties"]["osvDatabase"]["ecosystems"]["PyPI"]
    assert db["newest_advisory_modified"] == "2024-10-10T17:22:00Z" and db["age_days"] > 700
    assert run["properties"]["ecosystemsWithoutData"] == ["npm"]
    assert output.details["database"]["age_days"] > 700
    assert output.details["lock_files"][0] == "Pipfile.lock"
    assert any(line.startswith("database PyPI: 2661 advisories") for line in result.stdout_tail.splitlines())


def test_a_scanned_tree_cannot_shadow_the_matcher(source, tmp_path):
    evil = source / "workers"
    evil.mkdir()
    (evil / "__init__.py").write_text("raise SystemExit('shadowed')\n")
    output, result = run_scanner(Osv(str(SNAPSHOT)), source, tmp_path / "scratch")
    assert result.exit_code == 0 and len(output.findings) == 15


def test_empty_database_is_a_skip_reason(tmp_path):
    reason = Osv(str(tmp_path / "nothing")).unavailable_reason()
    assert reason and "python -m workers.osv refresh" in reason


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def do_GET(self):  # noqa: N802
        body = self.files.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args):
        pass


@pytest.fixture()
def dump_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _npm_dump() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("GHSA-35jh-r3h4-6jhm.json", json.dumps({
            "id": "GHSA-35jh-r3h4-6jhm", "modified": "2024-05-01T00:00:00Z", "aliases": ["CVE-2021-23337"],
            "summary": "Command Injection in lodash",
            "database_specific": {"severity": "HIGH"},
            "affected": [{"package": {"ecosystem": "npm", "name": "lodash"},
                          "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "4.17.21"}]}]}]}))
    return buf.getvalue()


def test_refresh_downloads_dumps_and_records_source(dump_server, tmp_path, source):
    pypi = (SNAPSHOT / "PyPI-all.zip").read_bytes()
    _Handler.files = {"/PyPI/all.zip": pypi, "/npm/all.zip": _npm_dump()}
    base = f"http://127.0.0.1:{dump_server.server_address[1]}"
    db = tmp_path / "db"
    done = refresh(db, ["PyPI", "npm"], base)
    assert done["PyPI"]["sha256"] == hashlib.sha256(pypi).hexdigest()
    assert (db / "PyPI-all.zip").read_bytes() == pypi and (db / "PyPI-all.index.json").is_file()
    info = Database.open(db).describe()["ecosystems"]
    assert info["PyPI"]["source"] == f"{base}/PyPI/all.zip" and info["PyPI"]["fetched_at"]
    assert info["npm"]["advisories"] == 1
    # npm lock files now match too
    output, _ = run_scanner(Osv(str(db)), source, tmp_path / "scratch")
    lodash = next(f for f in output.findings if f.rule_id == "GHSA-35jh-r3h4-6jhm")
    assert lodash.path == "web/package-lock.json" and lodash.severity == "high"
    assert len(output.findings) == 16


def test_refresh_fails_clearly_offline_and_keeps_the_old_data(tmp_path):
    db = tmp_path / "db"
    db.mkdir()
    shutil.copy(SNAPSHOT / "PyPI-all.zip", db / "PyPI-all.zip")
    before = (db / "PyPI-all.zip").read_bytes()
    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RefreshError, match="cannot download"):
        refresh(db, ["PyPI"], closed, timeout=5)
    assert (db / "PyPI-all.zip").read_bytes() == before
    assert sorted(p.name for p in db.iterdir()) == ["PyPI-all.zip"]  # no partial download left
    proc = subprocess.run([sys.executable, "-m", "workers.osv", "--db", str(db), "refresh",
                           "--source", closed, "--timeout", "5"], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert proc.returncode == 2
    assert "osv refresh failed: cannot download" in proc.stderr


def test_refresh_rejects_a_bad_dump(dump_server, tmp_path):
    _Handler.files = {"/PyPI/all.zip": b"<html>captive portal</html>"}
    db = tmp_path / "db"
    with pytest.raises(RefreshError, match="not a zip"):
        refresh(db, ["PyPI"], f"http://127.0.0.1:{dump_server.server_address[1]}")
    assert not (db / "PyPI-all.zip").exists()
