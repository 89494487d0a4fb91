"""Paths from git history: an older commit's tree may hold entries a checkout would refuse ('..',
'.git', names with control characters) -- git and dulwich check paths only when they write a work
tree. The history secrets scan reads every old tree, so it must never turn such a path into a place
on disk: before the fix a '..' chain wrote the blob wherever it pointed (a ``.pth`` file in a
virtualenv's site-packages is code execution). The scan runs the real detect-secrets-history
adapter under the pinned ``.tools`` Python, as a scan does."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from dulwich.objects import Blob, Commit, Tree
from dulwich.repo import Repo

from tests.support.scanning import located, run_scanner, sarif_text
from workers.scanners.detect_secrets_scan import DetectSecretsHistory

TOKEN = "ghp_Q7vK2mX9pL4wT8zR1nB6cY3dF5hJ0sA2eU9g"
PLANTED = f'GITHUB_TOKEN = "{TOKEN}"\n'.encode()
TREE_MODE = 0o040000
FILE_MODE = 0o100644


def _commit(repo: Repo, tree: Tree, parents: list[bytes], message: bytes) -> bytes:
    commit = Commit()
    commit.tree = tree.id
    commit.parents = parents
    commit.author = commit.committer = b"Test <test@example.invalid>"
    commit.author_time = commit.commit_time = int(time.time())
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = message
    repo.object_store.add_object(commit)
    return commit.id


def _tree(entries: list[tuple[bytes, int, bytes]], repo: Repo) -> Tree:
    tree = Tree()
    for name, mode, sha in entries:
        tree.add(name, mode, sha)
    repo.object_store.add_object(tree)
    return tree


def _hostile_repo(path: Path, name: bytes, depth: int) -> tuple[Path, str]:
    """A repository whose first commit's tree nests ``depth`` entries named '..' above a blob
    ``name`` holding a token; the second commit (HEAD) holds an ordinary file only. Built from
    objects directly: no git command accepts such a tree."""
    path.mkdir(parents=True)
    repo = Repo.init(str(path))
    secret = Blob.from_string(PLANTED)
    hello = Blob.from_string(b"print('hello')\n")
    repo.object_store.add_object(secret)
    repo.object_store.add_object(hello)
    inner = _tree([(name, FILE_MODE, secret.id)], repo)
    for _ in range(depth):
        inner = _tree([(b"..", TREE_MODE, inner.id)], repo)
    first_tree = _tree([(b"..", TREE_MODE, inner.id), (b"app.py", FILE_MODE, hello.id)], repo)
    first = _commit(repo, first_tree, [], b"hostile\n")
    head_tree = _tree([(b"app.py", FILE_MODE, hello.id)], repo)
    head = _commit(repo, head_tree, [first], b"ordinary\n")
    repo.refs[b"refs/heads/main"] = head
    repo.refs.set_symbolic_ref(b"HEAD", b"refs/heads/main")
    (path / "app.py").write_text("print('hello')\n")
    return path, first.decode()


def _files_under(root: Path) -> set[Path]:
    return {Path(d) / f for d, _, files in os.walk(root) for f in files}


@pytest.mark.parametrize("name", [b"planted.pth", b"evil\x1b[2Jname.py"], ids=["pth", "control-chars"])
def test_a_dotdot_chain_in_an_old_tree_writes_nothing_outside_the_scratch_folder(tmp_path: Path,
                                                                                 name: bytes) -> None:
    scanner = DetectSecretsHistory()
    assert scanner.unavailable_reason() is None, "run `make tools` first"
    # six levels of ".." from scratch/<tool>/blobs/<blob id>/ reach tmp_path: where the old code wrote
    repo, first = _hostile_repo(tmp_path / "escape" / "repo", name, depth=5)
    scratch = tmp_path / "escape" / "work" / "scratch"
    before = _files_under(tmp_path)
    lines: list[str] = []
    out = run_scanner(scanner, repo, scratch, lines=lines)

    written = _files_under(tmp_path) - before
    assert all(scratch / scanner.id in p.parents for p in written), sorted(map(str, written))
    assert not (scratch / scanner.id / "blobs").exists()  # the copies, which hold secrets, are gone
    # the secret is still found, under the path the tree names (controls escaped, never raw)
    shown = "../" * 6 + name.decode().replace("\x1b", "\\x1b")
    assert ("github-token", shown, 1) in located(out)
    finding = next(f for f in out.findings if f.rule_id == "github-token")
    assert finding.properties["commit"] == first and finding.snippet == 'GITHUB_TOKEN = "****"'
    assert any("a checkout would refuse" in note for note in out.notes)
    text = sarif_text(scanner, out) + "\n".join(lines)
    assert TOKEN not in text and "\x1b" not in text
