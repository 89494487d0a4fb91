"""The clone process checks every connection it makes: a redirect from an allowed host to an
internal one is refused before anything connects there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tasks.netpolicy import guard_resolver

ROOT = Path(__file__).resolve().parents[2]


def _server(handler):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_redirect_to_an_internal_host_is_refused(tmp_path):
    hits: list[str] = []

    class Target(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    target = _server(Target)

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{target.server_port}{self.path}")
            self.end_headers()

        def log_message(self, *args):
            pass

    front = _server(Redirect)
    try:
        env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)}
        job = {"url": f"http://localhost:{front.server_port}/repo.git", "dest": str(tmp_path / "d"),
               "max_files": 1000, "max_bytes": 10**8, "allowed_hosts": ["localhost"]}
        out = subprocess.run([sys.executable, "-m", "workers.sources.git_clone"], input=json.dumps(job) + "\n",
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        # refused as a redirect (the transport checks each hop) before any connection to the target
        assert result["error"] == "git_redirect_not_allowed", result
        assert hits == []
    finally:
        front.shutdown()
        target.shutdown()


def test_guard_lets_listed_and_public_hosts_through_in_process():
    import socket

    original = socket.getaddrinfo
    try:
        refused = guard_resolver(["localhost"])
        assert socket.getaddrinfo("localhost", 80)
        try:
            socket.getaddrinfo("127.0.0.1", 80)
        except socket.gaierror:
            pass
        else:
            raise AssertionError("loopback literal was not refused")
        assert refused == ["127.0.0.1"]
    finally:
        socket.getaddrinfo = original
