"""Trees shaped to crash or drown the worker: folders nested deeper than Python's own tree walks
can recurse, and a "tree bomb" whose few kilobytes of git objects stand for a hundred million
files. Each is refused with a clear code before anything is checked out or copied."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from dulwich.objects import Blob, Commit, Tree
from dulwich.repo import Repo

from tasks.pathsafe import MAX_TREE_DEPTH
from tests.support.gitrepos import GitDaemon, make_repo
from workers.sources.directory import copy_directory
from workers.sources.errors import SourceError

pytestmark = pytest.mark.timeout(600)


def _tree_bomb(base: Path, name: str, fanout: int = 10, levels: int = 8) -> None:
    """A repository whose HEAD tree names ``fanout ** levels`` files in a few hundred objects."""
    repo_path = base / name
    repo_path.mkdir()
    repo = Repo.init(str(repo_path))
    blob = Blob.from_string(b"print('boom')\n")
    repo.object_store.add_object(blob)
    tree = Tree()
    for i in range(fanout):
        tree.add(f"f{i}.py".encode(), 0o100644, blob.id)
    repo.object_store.add_object(tree)
    for _ in range(levels - 1):
        parent = Tree()
        for i in range(fanout):
            parent.add(f"d{i}".encode(), 0o040000, tree.id)
        repo.object_store.add_object(parent)
        tree = parent
    commit = Commit()
    commit.tree = tree.id
    commit.author = commit.committer = b"t <t@t>"
    commit.author_time = commit.commit_time = int(time.time())
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = b"bomb"
    repo.object_store.add_object(commit)
    repo.refs[b"refs/heads/main"] = commit.id
    repo.refs.set_symbolic_ref(b"HEAD", b"refs/heads/main")
    (repo_path / ".git" / "git-daemon-export-ok").touch()


def test_a_tree_bomb_is_refused_before_checkout(service, git_server: GitDaemon):
    _tree_bomb(git_server.base, "tree-bomb")
    resp = service.submit(git_url=git_server.url("tree-bomb"), profile="smoke")
    assert resp.status_code == 202, resp.text
    record = service.wait_done(resp.json()["test_id"], timeout=180)  # a checkout of 10**8 files never ends
    assert record["status"] == "FAILED"
    assert record["errors"][-1]["code"] == "too_many_files", record["errors"]
    assert not list(service.artifact_root.glob(f"{resp.json()['test_id']}/reports/sast/*"))  # no tool ran


def test_a_repository_nested_past_the_limit_is_refused(service, git_server: GitDaemon):
    deep = "/".join(["d"] * (MAX_TREE_DEPTH + 20)) + "/app.py"
    make_repo(git_server.base, "too-deep", {deep: "print('deep')\n", "top.py": "print('top')\n"})
    resp = service.submit(git_url=git_server.url("too-deep"), profile="smoke")
    assert resp.status_code == 202, resp.text
    record = service.wait_done(resp.json()["test_id"], timeout=180)
    assert record["status"] == "FAILED"
    assert record["errors"][-1]["code"] == "source_too_deep", record["errors"]


def test_a_repository_just_inside_the_limit_is_scanned(service, git_server: GitDaemon):
    deep = "/".join(["d"] * (MAX_TREE_DEPTH - 1)) + "/app.py"
    make_repo(git_server.base, "deep-ok", {deep: "import subprocess\nsubprocess.call('x', shell=True)\n"})
    resp = service.submit(git_url=git_server.url("deep-ok"), profile="smoke")
    record = service.wait_done(resp.json()["test_id"], timeout=180)
    assert record["status"] == "SUCCEEDED", record["errors"]
    assert sum(record["summary"]["by_tool"]["bandit"].values()) >= 1  # the deepest file was scanned


def test_a_directory_nested_past_the_limit_is_refused(tmp_path):
    root = tmp_path / "root"
    folder = root / "src"
    folder.mkdir(parents=True)
    for _ in range(MAX_TREE_DEPTH * 3):
        folder = folder / "d"
        folder.mkdir()
    (folder / "app.py").write_text("print('deep')\n")
    with pytest.raises(SourceError) as caught:
        copy_directory(str(root / "src"), tmp_path / "dest", (str(root),), max_files=1000, max_bytes=10**6)
    assert caught.value.code == "source_too_deep"
