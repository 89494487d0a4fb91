"""The clone process checks every connection it makes: a redirect from an allowed host to an
internal one is refused before anything connects there."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tasks.netpolicy import guard_resolver
from tests.support.recorder import recording_listener

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


def _clone(job: dict, tmp_path: Path) -> dict:
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-m", "workers.sources.git_clone"], input=json.dumps(job) + "\n",
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_ssh_connects_to_the_address_the_policy_checked_and_never_to_a_refused_host(tmp_path):
    # ssh resolves names itself, outside the guarded resolver: the clone resolves the host through
    # the guard and pins ssh to that address (HostName), so a second DNS answer cannot redirect it.
    address = socket.getaddrinfo("localhost", 22, proto=socket.IPPROTO_TCP)[0][4][0]
    sock, seen = recording_listener(address)
    port = sock.getsockname()[1]
    try:
        (tmp_path / "home").mkdir()
        url = f"ssh://git@localhost:{port}/repo.git"
        job = {"url": url, "dest": str(tmp_path / "a"), "max_files": 1000, "max_bytes": 10**8,
               "allowed_hosts": []}
        refused = _clone(job, tmp_path)
        assert refused["error"] == "git_host_not_allowed", refused
        assert seen == []  # refused before anything connected
        allowed = _clone({**job, "dest": str(tmp_path / "b"), "allowed_hosts": ["localhost"]}, tmp_path)
        # The real ssh client ran with the pinned options and reached the checked address (the
        # listener is no ssh server, so the clone then fails as any unreadable repository does).
        assert seen == [address], (seen, allowed)
        assert allowed["error"] == "repository_not_found", allowed
    finally:
        sock.close()


def test_the_ssh_command_names_the_checked_address_and_never_prompts():
    from workers.sources.git_clone import _ssh_command

    command = shlex.split(_ssh_command("ssh://git@127.0.0.1:2222/org/repo.git"))
    assert command[0] == "ssh"
    assert "HostName=127.0.0.1" in command and "HostKeyAlias=[127.0.0.1]:2222" in command
    assert "HostKeyAlias=localhost" in shlex.split(_ssh_command("ssh://git@localhost:22/r.git"))
    assert "BatchMode=yes" in command


def test_an_ssh_host_that_does_not_resolve_is_a_clear_error(monkeypatch):
    import workers.sources.git_clone as git_clone

    def no_answer(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, f"{host}: no such name")

    monkeypatch.setattr(git_clone.socket, "getaddrinfo", no_answer)  # no DNS query leaves the test
    with pytest.raises(git_clone.CloneError) as exc:
        git_clone._ssh_command("ssh://git@git.nowhere.invalid/r.git")
    assert exc.value.code == "git_host_unresolvable" and "git.nowhere.invalid" in str(exc.value)


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
