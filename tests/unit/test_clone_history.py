"""The clone is shallow unless a selected scanner reads the git history."""

from __future__ import annotations

from pathlib import Path

from dulwich.repo import Repo

from tasks.settings import Settings
from tests.support.gitrepos import GitDaemon, commit_files, make_repo
from tests.support.gitrepos import git as run_git
from workers.sources import git


def test_full_history_only_when_asked(git_server: GitDaemon, tmp_path: Path) -> None:
    repo = make_repo(git_server.base, "history-depth", {"a.txt": "one\n"})
    initial = run_git(repo, "rev-parse", "HEAD").encode()
    head = commit_files(repo, {"a.txt": "two\n"}, "second")
    settings = Settings(redis_url="redis://127.0.0.1:1/0", git_allowed_hosts=("127.0.0.1",))
    shallow = git.fetch(settings, git_server.url("history-depth"), tmp_path / "shallow", branch=None, commit=None)
    full = git.fetch(settings, git_server.url("history-depth"), tmp_path / "full", branch=None, commit=None,
                     full_history=True)
    assert shallow.commit == full.commit == head
    assert (tmp_path / "shallow" / ".git" / "shallow").is_file()
    assert not (tmp_path / "full" / ".git" / "shallow").exists()
    with Repo(str(tmp_path / "full")) as full_repo, Repo(str(tmp_path / "shallow")) as shallow_repo:
        assert initial in full_repo.object_store
        assert initial not in shallow_repo.object_store


def test_a_commit_asked_for_alone_belongs_to_the_default_branch_only_when_that_branch_holds_it(
        git_server: GitDaemon, tmp_path: Path) -> None:
    repo = make_repo(git_server.base, "pinned-commits", {"a.txt": "one\n"})
    on_main = run_git(repo, "rev-parse", "HEAD")
    commit_files(repo, {"a.txt": "two\n"}, "second on main")
    run_git(repo, "checkout", "-q", "-b", "feature")
    elsewhere = commit_files(repo, {"b.txt": "pr\n"}, "a pull request's head")
    run_git(repo, "checkout", "-q", "main")
    settings = Settings(redis_url="redis://127.0.0.1:1/0", git_allowed_hosts=("127.0.0.1",))
    url = git_server.url("pinned-commits")
    held = git.fetch(settings, url, tmp_path / "held", branch=None, commit=on_main)
    assert held.commit == on_main and held.branch == "main"
    alone = git.fetch(settings, url, tmp_path / "alone", branch=None, commit=elsewhere)
    assert alone.commit == elsewhere and alone.branch is None
    named = git.fetch(settings, url, tmp_path / "named", branch="feature", commit=elsewhere)
    assert named.branch == "feature"
