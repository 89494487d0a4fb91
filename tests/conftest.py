from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from stack.redis_server import RedisServer
from tests.support.gitrepos import GitDaemon, commit_files, make_repo
from tests.support.service import Service, base_env

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis: CERTUS_ASSURANCE_REDIS_URL when set, else one started on a free port."""
    external = os.environ.get("CERTUS_ASSURANCE_REDIS_URL")
    if external:
        yield external
        return
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture()
def redis_client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


@pytest.fixture(scope="session")
def git_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitDaemon]:
    daemon = GitDaemon(tmp_path_factory.mktemp("git")).start()
    try:
        yield daemon
    finally:
        daemon.stop()


def _fixture_files(name: str) -> dict[str, str]:
    root = FIXTURES / name
    return {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="session")
def vulnerable_repo(git_server: GitDaemon) -> dict[str, str]:
    """A repository with planted Python vulnerabilities, with a second commit on a feature branch."""
    from tests.support.gitrepos import git

    repo = make_repo(git_server.base, "vulnerable", _fixture_files("vulnerable-python"))
    first = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "-b", "feature")
    second = commit_files(repo, {"extra.py": "import os\n\nos.system('ls ' + os.environ['X'])\n"}, "feature")
    git(repo, "checkout", "-q", "main")
    return {"url": git_server.url("vulnerable"), "first": first, "feature_head": second}


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("service")
    svc = Service(env=base_env(tmp, redis_url), workdir=tmp)
    try:
        # Two API replicas and two workers on one Redis, as a small production deployment runs.
        svc.start_worker("w1")
        svc.start_worker("w2")
        svc.start_api()
        svc.start_api()
        svc.wait_workers(2)
        yield svc
    finally:
        svc.stop()
