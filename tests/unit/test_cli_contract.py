"""The CLI against a small stand-in of the API contract for endpoints other parts of the service
provide (upload-request, artifacts, authentication): the follow logic, exit codes, the Bearer header,
the config file, the polling fallback and path confinement of downloads."""

from __future__ import annotations

import io
import json
import threading
import unicodedata
from collections.abc import Callable, Iterator
from typing import Any, TextIO, cast

import pytest
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from cli.progress import OWN_SEQUENCES, Progress
from cli.textsafe import UNSAFE_CATEGORIES, GuardedStream
from stack.ports import free_port
from tests.support.cli import run_cli

KEY = "ca_test_key_123"
TEST_ID = "test_0123456789ab"
HOSTILE_ID = "test_0000000000ee"  # answers with an error envelope full of control characters
EVENTS = [
    {"id": "1-0", "type": "phase", "timestamp": 1.0, "phase": "clone", "message": "cloning"},
    {"id": "2-0", "type": "tool_start", "timestamp": 2.0, "tool": "bandit", "command": ["bandit"]},
    {"id": "3-0", "type": "tool_complete", "timestamp": 3.0, "tool": "bandit", "exit_code": 1, "findings": 2,
     "duration_s": 1.0},
    {"id": "4-0", "type": "scan_complete", "timestamp": 4.0, "status": "SUCCEEDED", "summary": None},
]


class Fake:
    def __init__(self, upload_outcome: str, files: dict[str, bytes]) -> None:
        self.upload_outcome = upload_outcome
        self.files = files
        self.polls = 0
        self.upload_bodies: list[dict[str, Any]] = []
        self.auth_seen: list[str] = []


def _app(fake: Fake) -> Flask:
    app = Flask(__name__)

    @app.before_request
    def _auth():
        header = request.headers.get("Authorization", "")
        fake.auth_seen.append(header)
        if header != f"Bearer {KEY}":
            return jsonify({"error": {"code": "unauthorized", "message": "an API key is required",
                                      "request_id": "r1"}}), 401
        return None

    @app.get(f"/v1/security-scans/{TEST_ID}")
    def record():
        fake.polls += 1
        status = "pending" if fake.polls < 2 else fake.upload_outcome
        return jsonify({"test_id": TEST_ID, "status": "SUCCEEDED", "upload_status": status,
                        "policy": {"passed": True}, "remote_artifacts": {"s3": "s3://golden/x"}})

    @app.post(f"/v1/security-scans/{TEST_ID}/upload-request")
    def upload():
        fake.upload_bodies.append(request.get_json())
        return jsonify({"upload_permission_id": "perm_1", "upload_status": "pending"}), 202

    @app.get(f"/v1/security-scans/{TEST_ID}/artifacts")
    def artifacts():
        return jsonify({"artifacts": [{"path": p, "size": len(b)} for p, b in fake.files.items()]})

    @app.get(f"/v1/security-scans/{TEST_ID}/artifacts/<path:rel>")
    def artifact(rel: str):
        return fake.files[rel]

    @app.get(f"/v1/security-scans/{HOSTILE_ID}")
    def hostile():
        return jsonify({"error": {"code": "conflict\x1b[2J", "message": "no\nerror 200 ok: all fine\x9b",
                                  "fields": {"name\u202e": ["bad\rvalue"]}, "request_id": "r\x1b]0;x\x07"}}), 409

    @app.get(f"/v1/security-scans/{TEST_ID}/events")
    def events():
        after = request.args.get("after", "0-0")
        rest = [e for e in EVENTS if tuple(map(int, e["id"].split("-"))) > tuple(map(int, after.split("-")))]
        page = rest[:2]
        return jsonify({"events": page, "next_after": page[-1]["id"] if page else after,
                        "complete": any(e["type"] == "scan_complete" for e in page)})

    return app


@pytest.fixture()
def fake_api() -> Iterator[Callable[..., tuple[str, Fake]]]:
    servers: list[Any] = []

    def make(outcome: str = "uploaded", files: dict[str, bytes] | None = None) -> tuple[str, Fake]:
        fake = Fake(outcome, files or {"scan.json": b"{}", "reports/sast/bandit.sarif.json": b'{"version":"2.1.0"}'})
        port = free_port()
        server = make_server("127.0.0.1", port, _app(fake), threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{port}", fake

    yield make
    for server in servers:
        server.shutdown()


def test_upload_follows_to_uploaded(fake_api):
    url, fake = fake_api("uploaded")
    result = run_cli("upload", TEST_ID, "--tier", "basic", "--signer", "ci@example", url=url, api_key=KEY)
    assert result.code == 0, result.err
    assert "permission perm_1, status pending" in result.out and "upload uploaded" in result.out
    assert fake.upload_bodies == [{"tier": "basic", "signer": "ci@example"}]
    assert set(fake.auth_seen) == {f"Bearer {KEY}"}


@pytest.mark.parametrize("outcome", ["denied", "upload_failed"])
def test_upload_denied_or_failed_exits_7(fake_api, outcome):
    url, _ = fake_api(outcome)
    result = run_cli("upload", TEST_ID, "--json", url=url, api_key=KEY)
    assert result.code == 7 and result.json()["upload_status"] == outcome


def test_missing_key_is_a_clean_401(fake_api):
    url, _ = fake_api()
    result = run_cli("status", TEST_ID, url=url)
    assert result.code == 5 and "error 401 unauthorized: an API key is required" in result.err
    assert "Traceback" not in result.err


def test_config_file_supplies_url_and_key(fake_api, tmp_path):
    url, fake = fake_api()
    config = tmp_path / "config.toml"
    config.write_text(f'url = "{url}"\napi_key = "{KEY}"\n')
    result = run_cli("status", TEST_ID, "--json", env={"CERTUS_ASSURANCE_CONFIG": str(config)})
    assert result.code == 0 and result.json()["test_id"] == TEST_ID
    flag_wins = run_cli("status", TEST_ID, "--api-key", "wrong", env={"CERTUS_ASSURANCE_CONFIG": str(config)})
    assert flag_wins.code == 5
    broken = tmp_path / "broken.toml"
    broken.write_text("url = ")
    bad = run_cli("status", TEST_ID, "--config", str(broken))
    assert bad.code == 2 and "cannot read config file" in bad.err


def test_artifacts_download_keeps_layout(fake_api, tmp_path):
    url, fake = fake_api()
    listing = run_cli("artifacts", TEST_ID, "--json", url=url, api_key=KEY)
    assert [e["path"] for e in listing.json()] == ["scan.json", "reports/sast/bandit.sarif.json"]
    out = tmp_path / "out"
    got = run_cli("artifacts", TEST_ID, "--out", str(out), "--path", "reports/sast/bandit.sarif.json",
                  url=url, api_key=KEY)
    assert got.code == 0, got.err
    assert (out / "reports/sast/bandit.sarif.json").read_bytes() == b'{"version":"2.1.0"}'
    assert not (out / "scan.json").exists()


def test_artifact_paths_cannot_leave_the_folder(fake_api, tmp_path):
    url, _ = fake_api(files={"../escape.txt": b"x"})
    result = run_cli("artifacts", TEST_ID, "--out", str(tmp_path / "out"), url=url, api_key=KEY)
    assert result.code == 5 and "refusing artifact path" in result.err
    assert not (tmp_path / "escape.txt").exists()


def test_follow_falls_back_to_polling_without_websockets(fake_api):
    url, _ = fake_api()
    result = run_cli("logs", TEST_ID, "--follow", "--json", url=url, api_key=KEY)
    assert result.code == 0, result.err
    lines = [json.loads(x) for x in result.out.splitlines()]
    assert [e["id"] for e in lines[:-1]] == [e["id"] for e in EVENTS]
    assert lines[-1]["type"] == "result" and lines[-1]["exit_code"] == 0


def test_global_flags_work_before_and_after_the_command(fake_api):
    url, _ = fake_api()
    before = run_cli("--url", url, "--api-key", KEY, "--json", "status", TEST_ID)
    after = run_cli("status", TEST_ID, "--url", url, "--api-key", KEY, "--json")
    assert before.code == after.code == 0, before.err + after.err
    assert before.json()["test_id"] == after.json()["test_id"] == TEST_ID


def test_error_envelopes_are_printed_escaped(fake_api):
    url, _ = fake_api()
    result = run_cli("status", HOSTILE_ID, url=url, api_key=KEY)
    assert result.code == 5
    assert result.err.split("\n")[:3] == [
        "error 409 conflict\\x1b[2J: no\\nerror 200 ok: all fine\\x9b",
        "  name\\u202e: bad\\rvalue",
        "  (request id r\\x1b]0;x\\x07)"]
    assert not any(unicodedata.category(c) in UNSAFE_CATEGORIES for c in result.err.replace("\n", ""))


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_only_the_clis_own_colours_pass():
    screen = _Terminal()
    progress = Progress(cast(TextIO, GuardedStream(screen, OWN_SEQUENCES)))
    progress.event({"type": "log", "timestamp": 0, "tool": "bandit", "line": "\x1b[1;32mfake\x1b[0m \x1b[2J"})
    progress.event({"type": "scan_complete", "timestamp": 0, "status": "FAILED\x1b[8m"})
    lines = screen.getvalue().split("\n")
    # a field is escaped even when it holds a sequence the CLI itself uses
    assert lines[0].endswith("bandit | \\x1b[1;32mfake\\x1b[0m \\x1b[2J")
    assert lines[1].endswith("\x1b[1;33m■ scan FAILED\\x1b[8m\x1b[0m")
    # and whatever reaches the stream unescaped, only those colours get through
    GuardedStream(screen, OWN_SEQUENCES).write("a\x1b[1;31mb\x1b[0m\x1b[2J\r\x9bc\n")
    assert screen.getvalue().split("\n")[2] == "a\x1b[1;31mb\x1b[0m\\x1b[2J\\r\\x9bc"
