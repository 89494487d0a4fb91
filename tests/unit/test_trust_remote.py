"""The remote Trust client fails closed against real local HTTP servers that misbehave."""

from __future__ import annotations

import http.server
import json
import threading
import time

import pytest

from stack.ports import free_port
from tests.support.uploads_servers import make_tls
from workers.uploads.trust import RemoteTrustClient

REQUEST = {"scan_id": "test_00000000abcd", "tier": "verified"}


class _Server:
    def __init__(self, status: int, body: bytes, delay: float = 0.0, tls=None) -> None:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                time.sleep(outer.delay)
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

        self.status, self.body, self.delay = status, body, delay
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(tls[0]), str(tls[1]))
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_tls(tmp_path_factory.mktemp("tls"))


def _permit() -> bytes:
    return json.dumps({"permitted": True, "scan_id": REQUEST["scan_id"], "upload_permission_id": "perm_1",
                       "verification_proof": {"statement": {}}}).encode()


def test_permit_over_verified_tls(tls):
    server = _Server(200, _permit(), tls=tls)
    try:
        decision = RemoteTrustClient(f"https://127.0.0.1:{server.port}", timeout=5, ca_bundle=str(tls[0])
                                     ).verify_and_permit(REQUEST)
        assert decision.permitted and decision.permission_id == "perm_1"
    finally:
        server.close()


def test_untrusted_certificate_is_a_denial(tls):
    server = _Server(200, _permit(), tls=tls)
    try:
        decision = RemoteTrustClient(f"https://127.0.0.1:{server.port}", timeout=5).verify_and_permit(REQUEST)
        assert not decision.permitted and decision.reason == "trust_tls_error"
    finally:
        server.close()


@pytest.mark.parametrize(("status", "body", "delay", "reason"), [
    (500, b'{"permitted": true}', 0, "trust_error"),
    (302, b"", 0, "trust_error"),
    (200, b"<html>", 0, "trust_malformed_response"),
    (200, b'{"permitted": true, "scan_id": "test_00000000abcd"}', 0, "trust_malformed_response"),
    (200, b'{"permitted": false, "scan_id": "test_00000000abcd", "reason": "policy"}', 0, "policy"),
    (200, b"{}", 3, "trust_timeout"),
])
def test_misbehaving_trust_denies(tls, status, body, delay, reason):
    server = _Server(status, body, delay=delay, tls=tls)
    try:
        decision = RemoteTrustClient(f"https://127.0.0.1:{server.port}", timeout=1, ca_bundle=str(tls[0])
                                     ).verify_and_permit(REQUEST)
        assert not decision.permitted and decision.reason == reason
    finally:
        server.close()


def test_nothing_listening_denies():
    decision = RemoteTrustClient(f"https://127.0.0.1:{free_port()}", timeout=2).verify_and_permit(REQUEST)
    assert not decision.permitted and decision.reason == "trust_unreachable"
