"""The git source's limits and fetch depth, against a real `git daemon` and a server that hangs."""

from __future__ import annotations

import os
import socket
import threading

import pytest
from dulwich.repo import Repo

from stack.ports import free_port
from tasks.settings import Settings
from tests.support.gitrepos import commit_files, make_repo
from workers.sources import git
from workers.sources.errors import SourceError


def _settings(**kw) -> Settings:
    return Settings(git_allowed_hosts=("127.0.0.1",), **kw)


@pytest.fixture(scope="module")
def repos(git_server):
    base = git_server.base
    make_repo(base, "many-files", {f"f{i}.txt": str(i) for i in range(30)})
    make_repo(base, "big", {"blob.bin": os.urandom(400_000).hex()})
    history = make_repo(base, "history", {"a.txt": "1"})
    for i in range(5):
        commit_files(history, {"a.txt": str(i + 2)}, f"change {i}")
    return {name: git_server.url(name) for name in ("many-files", "big", "history")}


def test_branch_tip_is_fetched_shallowly(tmp_path, repos):
    checkout = git.fetch(_settings(), repos["history"], tmp_path / "src", branch=None, commit=None)
    with Repo(str(tmp_path / "src")) as repo:
        commits = list(repo.get_walker(include=[checkout.commit.encode()]))  # type: ignore[list-item]
    assert len(commits) == 1 and (tmp_path / "src" / "a.txt").read_text() == "6"


def test_too_many_files(tmp_path, repos):
    with pytest.raises(SourceError) as err:
        git.fetch(_settings(max_repo_files=10), repos["many-files"], tmp_path / "src", branch=None, commit=None)
    assert err.value.code == "too_many_files"


def test_repository_too_large(tmp_path, repos):
    with pytest.raises(SourceError) as err:
        git.fetch(_settings(max_repo_bytes=100_000), repos["big"], tmp_path / "src", branch=None, commit=None)
    assert err.value.code == "repository_too_large"


def test_clone_timeout_against_a_server_that_never_answers(tmp_path):
    port = free_port()
    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen(5)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.5)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])  # accept, then say nothing
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        with pytest.raises(SourceError) as err:
            git.fetch(_settings(clone_timeout=3), f"git://127.0.0.1:{port}/repo", tmp_path / "src",
                      branch=None, commit=None)
        assert err.value.code == "clone_timeout"
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


def test_cancel_stops_the_clone(tmp_path, repos):
    with pytest.raises(SourceError) as err:
        git.fetch(_settings(), repos["history"], tmp_path / "src", branch=None, commit=None, should_stop=lambda: True)
    assert err.value.code == "cancelled"


def test_local_sources_need_the_setting(tmp_path, repos):
    with pytest.raises(SourceError) as err:
        git.fetch(_settings(), str(tmp_path), tmp_path / "src", branch=None, commit=None)
    assert err.value.code == "git_url_not_allowed"
