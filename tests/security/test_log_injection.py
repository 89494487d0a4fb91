"""Log injection: the request path is logged by gunicorn (the access log) and by the API (one line
per request) before any key is checked, so anyone can put ``%0a``, ``%0d``, ``%1b`` or the UTF-8
of a C1 or bidirectional character in it. Each request must stay one line, with those characters
shown as escapes, in the console format as run by the service (gunicorn through stack.processes);
in the JSON format the path is data and must come back exactly."""

from __future__ import annotations

import http.client
import json
import logging
import secrets
import socket
import time
import unicodedata
from pathlib import Path

import pytest

from tasks.logconfig import ConsoleFormatter
from tasks.textsafe import UNSAFE_CATEGORIES
from tests.support.service import Service, base_env

FORGED = '127.0.0.1 "GET /v1/keys" 200 512 0.001s'  # what the attacker wants an operator to read


def _unsafe(text: str) -> set[str]:
    return {c for c in text if unicodedata.category(c) in UNSAFE_CATEGORIES and c != "\n"}


def _attack(port: int) -> tuple[str, str]:
    """Sends the hostile path without a key; returns a marker unique to it and the path as decoded."""
    marker = "mark" + secrets.token_hex(4)
    forged = FORGED.replace(" ", "%20").replace('"', "%22")
    encoded = f"/v1/security-scans/{marker}%0a{forged}%0d%1b[2J%c2%9b%e2%80%ae%e2%81%a6"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", encoded)
        status = conn.getresponse().status
    finally:
        conn.close()
    assert status in (401, 404)
    return marker, f"/v1/security-scans/{marker}\n{FORGED}\r\x1b[2J\x9b\u202e\u2066"


def _lines_with(log: Path, marker: str, count: int) -> list[str]:
    deadline = time.monotonic() + 20
    while True:
        lines = [line for line in log.read_text().split("\n") if marker in line]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


@pytest.mark.integration
def test_a_hostile_path_is_one_escaped_line_in_the_console_logs(service):
    port = service.api_ports[0]
    marker, _ = _attack(port)
    log = service.workdir / f"api-{port}.log"
    lines = _lines_with(log, marker, 2)
    access = [line for line in lines if line.startswith('127.0.0.1 "GET ')]  # gunicorn's access line
    app = [line for line in lines if " certus.access: GET " in line]  # the API's own request line
    assert len(access) == 1 and len(app) == 1 and len(lines) == 2, lines
    escaped = f"{marker}\\n{FORGED.replace(chr(34), chr(92) + chr(34))}\\r\\x1b[2J\\x9b\\u202e\\u2066"
    assert escaped in access[0], access
    assert f"{marker}\\n{FORGED}\\r\\x1b[2J\\x9b\\u202e\\u2066" in app[0], app
    text = log.read_text()
    assert _unsafe(text) == set()
    assert not any(line.startswith(FORGED) for line in text.split("\n"))


@pytest.mark.integration
def test_raw_control_bytes_in_a_request_line_are_escaped_in_the_error_log(service):
    port = service.api_ports[0]
    marker = "raw" + secrets.token_hex(4)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"GET /{marker}".encode() + b"\x1b[2J\r" + FORGED.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 400")
    lines = _lines_with(service.workdir / f"api-{port}.log", marker, 1)
    assert len(lines) == 1 and "Invalid request" in lines[0] and "\\x1b[2J" in lines[0], lines
    assert _unsafe(lines[0]) == set()


@pytest.mark.integration
def test_a_hostile_path_is_exact_data_in_the_json_logs(tmp_path, redis_url):
    svc = Service(env=base_env(tmp_path, redis_url, CERTUS_ASSURANCE_LOG_FORMAT="json"), workdir=tmp_path)
    try:
        port = svc.start_api()
        marker, decoded = _attack(port)
        lines = _lines_with(tmp_path / f"api-{port}.log", marker, 1)
    finally:
        svc.stop()
    assert len(lines) == 1 and _unsafe(lines[0]) == set(), lines
    record = json.loads(lines[0])
    assert record["logger"] == "certus.access" and record["path"] == decoded


def test_console_lines_escape_messages_and_indent_tracebacks():
    formatter = ConsoleFormatter("%(levelname)s %(name)s: %(message)s")
    try:
        raise ValueError(f"bad path\n{FORGED}\x1b[2J")
    except ValueError as exc:
        record = logging.LogRecord("certus.test", logging.ERROR, __file__, 1, "GET %s", ("/a\r\nB\x9b",),
                                   (type(exc), exc, exc.__traceback__))
    record.request_id = "r\n1"
    lines = formatter.format(record).split("\n")
    assert lines[0] == "ERROR certus.test: GET /a\\r\\nB\\x9b [request_id=r\\n1]"
    # A traceback is part of its record: every line of it is indented, and escaped like the rest.
    assert lines[1] == "  Traceback (most recent call last):"
    assert all(line.startswith("  ") for line in lines[1:])
    assert lines[-1] == f"  ValueError: bad path\\n{FORGED}\\x1b[2J"
