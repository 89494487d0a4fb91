"""The Redis that `make run` embeds asks for a password, so a local user cannot plant an admin key.

`python -m stack run` generates the password on first start (0600 under its folder), hands it to
redis-server in a 0600 configuration file (never on the command line, where `ps` shows it),
binds Redis to 127.0.0.1 only, and gives the password to the API and the worker: a scan runs end
to end. A client without the password is refused before it can write anything. A program that
took the port first is never sent the password.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import threading
from pathlib import Path

import pytest
import redis

from stack.__main__ import embedded_redis_url
from stack.ports import free_port
from stack.redis_server import RedisServer
from tests.support.stackrun import StackRun

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    stack = StackRun(tmp_path_factory.mktemp("stackrun")).start()
    try:
        yield stack
    finally:
        stack.stop()


def test_the_embedded_redis_refuses_a_client_without_the_password(run):
    intruder = redis.Redis(host="127.0.0.1", port=run.redis_port, decode_responses=True)
    with pytest.raises(redis.AuthenticationError):
        intruder.ping()
    # The attack itself: a forged key record, written without the password, is refused.
    with pytest.raises(redis.AuthenticationError):
        intruder.hset("ca:key:forged", mapping={"role": "admin", "workspaces": '["*"]'})
    wrong = redis.Redis(host="127.0.0.1", port=run.redis_port, password="not-the-password")
    with pytest.raises(redis.AuthenticationError):
        wrong.ping()
    owner = run.redis()
    assert owner.ping()
    assert owner.exists("ca:key:forged") == 0
    assert owner.config_get("bind")["bind"] == "127.0.0.1"
    assert owner.config_get("protected-mode")["protected-mode"] == "yes"


def test_the_password_is_strong_private_and_never_on_a_command_line(run):
    password_file = run.var / "redis-password"
    password = run.redis_password()
    assert len(password) >= 40
    assert password_file.stat().st_mode & 0o777 == 0o600
    config = run.var / "redis" / "redis.conf"
    assert config.stat().st_mode & 0o777 == 0o600
    assert (run.var / "redis").stat().st_mode & 0o777 == 0o700
    state = run.state()
    # Every process of the run, Redis included: the password is in none of their command lines.
    pids = [state["redis_pid"], *state["pids"].values()]
    for pid in pids:
        assert password not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    assert password not in run.output()
    assert password not in json.dumps(state)


def test_the_service_works_with_the_password(run, vulnerable_repo):
    resp = run.submit(git_url=vulnerable_repo["url"], profile="smoke")
    assert resp.status_code == 202, resp.text
    record = run.wait_done(resp.json()["test_id"])
    assert record["status"] == "SUCCEEDED", record


def test_a_second_start_reuses_the_password(tmp_path):
    from stack.private_file import ensure_secret

    first = ensure_secret(tmp_path / "redis-password")
    assert ensure_secret(tmp_path / "redis-password") == first
    # A password file others could read is not trusted: a new one replaces it.
    (tmp_path / "redis-password").chmod(0o644)
    second = ensure_secret(tmp_path / "redis-password")
    assert second != first and (tmp_path / "redis-password").stat().st_mode & 0o777 == 0o600


def test_a_squatter_on_the_port_is_never_sent_the_password(tmp_path):
    port = free_port()
    received: list[bytes] = []
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", port))
    squatter.listen()
    squatter.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = squatter.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(0.5)
                try:
                    received.append(conn.recv(4096))
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    server = RedisServer(tmp_path / "redis", port=port, password="p" * 43)
    try:
        with pytest.raises(RuntimeError, match="exited"):
            server.start()
    finally:
        stop.set()
        thread.join(5)
        squatter.close()
        server.stop()
    assert not any(b"p" * 43 in data for data in received)


def test_flower_finds_the_embedded_redis_of_a_cluster(tmp_path):
    folder = tmp_path / "cluster"
    folder.mkdir()
    from stack.private_file import ensure_secret

    password = ensure_secret(folder / "redis-password")
    (folder / "cluster.json").write_text(json.dumps({
        "redis_url": "redis://127.0.0.1:6400/0", "redis_password_file": str(folder / "redis-password")}))
    args = argparse.Namespace(cluster=str(folder), redis_port=6390)
    assert embedded_redis_url(args) == f"redis://:{password}@127.0.0.1:6400/0"
    os.chmod(folder / "redis-password", 0o640)  # readable by a group: not trusted, not used
    assert embedded_redis_url(args) is None
