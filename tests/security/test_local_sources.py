"""Local git sources (``file://`` URLs and paths) are confined to ALLOWED_SOURCE_ROOTS.

With ALLOW_LOCAL_SOURCES on, a submitter once scanned the service's own checkout. Now a local
repository must lie inside an allowed root once every link on its way is followed: the API
refuses anything else with 422 (``path_not_allowed``; ``..`` is already a ``validation_error``)
and stores nothing, and the worker checks again before it starts any clone, so a folder swapped
for a link after the submit is refused too. No roots refuse every local repository.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tasks.records import ScanRecord
from tasks.settings import Settings
from tests.support.gitrepos import git, make_repo
from tests.support.service import Service, base_env
from workers.redact import Redactor
from workers.sources import fetch as fetch_mod
from workers.sources import git as git_source
from workers.sources.errors import SourceError

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

PROJECT = Path(__file__).resolve().parents[2]  # the service's own checkout
DB = 12


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("local-sources")
    root = tmp / "roots"
    root.mkdir()
    make_repo(root, "ok", {"app.py": "print('ok')\n"})
    make_repo(tmp, "outside", {"app.py": "print('outside')\n"})
    os.symlink(PROJECT, root / "escape")  # a link inside the root to the service's own checkout
    os.symlink("ok", root / "ok-link")  # a link that stays inside the root
    return root


def _api(tmp: Path, redis_url: str, roots: str) -> Service:
    db_url = redis_url.rsplit("/", 1)[0] + f"/{DB}"
    svc = Service(env=base_env(tmp, db_url, CERTUS_ASSURANCE_ALLOW_LOCAL_SOURCES="true",
                               CERTUS_ASSURANCE_ALLOWED_SOURCE_ROOTS=roots), workdir=tmp)
    svc.start_api()  # no worker: nothing submitted here is ever cloned
    return svc


@pytest.fixture(scope="module")
def apis(root: Path, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Service]]:
    client = redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + f"/{DB}")
    client.flushdb()
    confined = _api(tmp_path_factory.mktemp("api-roots"), redis_url, str(root))
    rootless = _api(tmp_path_factory.mktemp("api-no-roots"), redis_url, "")
    try:
        yield confined, rootless
    finally:
        confined.stop()
        rootless.stop()
        client.flushdb()


def _code(svc: Service, url: str, workspace: str) -> tuple[int, str | None]:
    resp = svc.submit(workspace_id=workspace, git_url=url, profile="smoke")
    return resp.status_code, resp.json().get("error", {}).get("code")


def test_the_api_refuses_local_repositories_outside_the_roots_and_keeps_nothing(apis, root):
    confined, rootless = apis
    refused = {
        f"file://{PROJECT}": "path_not_allowed",
        str(PROJECT): "path_not_allowed",
        f"file://localhost{PROJECT}/.git": "path_not_allowed",
        f"file:{PROJECT}": "path_not_allowed",
        f"file://{root}/escape": "path_not_allowed",
        f"{root}/escape/.git": "path_not_allowed",
        f"file://{root.parent}/outside": "path_not_allowed",
        f"file://{root}/../outside": "validation_error",
        f"{root}/ok/../../outside": "validation_error",
    }
    for url, code in refused.items():
        assert _code(confined, url, "ws-refused") == (422, code), url
    for url in (f"file://{root}/ok", f"{root}/ok-link"):
        assert _code(confined, url, "ws-allowed") == (202, None), url
        assert _code(rootless, url, "ws-refused") == (422, "path_not_allowed"), url
    listed = confined.http.get(confined.url("/v1/security-scans"), params={"workspace_id": "ws-refused"}).json()
    assert listed["items"] == []
    listed = confined.http.get(confined.url("/v1/security-scans"), params={"workspace_id": "ws-allowed"}).json()
    assert len(listed["items"]) == 2


def _record(url: str) -> ScanRecord:
    return ScanRecord(test_id="test_00000000abcd", workspace_id="ws", component_id="c", assessment_id="a",
                      profile="light", source_type="git", git_url=url)


def _settings(*roots: Path, allow: bool = True) -> Settings:
    return Settings(allow_local_sources=allow, allowed_source_roots=tuple(str(r) for r in roots))


def test_the_worker_refuses_them_again_before_any_clone(root, tmp_path, monkeypatch):
    clones: list[str] = []
    monkeypatch.setattr(git_source, "fetch", lambda settings, url, *a, **k: clones.append(url))
    # The API never lets '..' through, but the worker does not rely on it.
    cases = [
        (_settings(root), f"file://{PROJECT}", "path_not_allowed"),
        (_settings(root), str(PROJECT), "path_not_allowed"),
        (_settings(root), f"file://{root}/../outside", "path_not_allowed"),
        (_settings(root), f"file://{root}/ok/../../outside", "path_not_allowed"),
        (_settings(root), f"file://{root}/escape", "path_not_allowed"),
        (_settings(), f"file://{root}/ok", "path_not_allowed"),
        (_settings(root, allow=False), f"file://{root}/ok", "git_url_not_allowed"),
    ]
    for settings, url, code in cases:
        with pytest.raises(SourceError) as err:
            fetch_mod.fetch_source(settings, _record(url), tmp_path / "src", Redactor())
        assert err.value.code == code, url
    # Accepted at submit while it was a folder in the root, then swapped for a link out of it.
    os.symlink(PROJECT, root / "was-a-folder")
    with pytest.raises(SourceError) as err:
        fetch_mod.fetch_source(_settings(root), _record(f"file://{root}/was-a-folder"), tmp_path / "src", Redactor())
    assert err.value.code == "path_not_allowed"
    assert clones == []


def test_a_local_repository_inside_a_root_is_cloned_from_its_real_folder(root, tmp_path, monkeypatch):
    clones: list[str] = []
    real_fetch = git_source.fetch

    def recording(settings: Settings, url: str, *args: Any, **kwargs: Any) -> Any:
        clones.append(url)
        return real_fetch(settings, url, *args, **kwargs)

    monkeypatch.setattr(git_source, "fetch", recording)
    fetched = fetch_mod.fetch_source(_settings(root), _record(f"file://{root}/ok-link"), tmp_path / "src",
                                     Redactor())
    assert clones == [str(root / "ok")]  # the link was resolved once, here, and the clone given its end
    assert fetched.commit == git(root / "ok", "rev-parse", "HEAD")
    assert (tmp_path / "src" / "app.py").read_text() == "print('ok')\n"


@pytest.mark.parametrize("sandbox", ["bubblewrap", "off"])
def test_a_local_repository_that_reads_another_repository_is_refused(root, tmp_path, sandbox):
    """Inside a root, but borrowing from outside it: alternates, a ``gitdir:`` file, a worktree."""
    outside = tmp_path / "elsewhere"
    make_repo(outside, "secret", {"secret.py": "TOKEN = 'outside-the-root'\n"})
    subprocess.run(["git", "clone", "-q", "--shared", str(outside / "secret"), str(root / f"alt-{sandbox}")],
                   check=True)
    subprocess.run(["git", "init", "-q", f"--separate-git-dir={outside / f'sep-{sandbox}.git'}",
                    str(root / f"sep-{sandbox}")], check=True)
    subprocess.run(["git", "-C", str(outside / "secret"), "worktree", "add", "-q",
                    str(root / f"wt-{sandbox}")], check=True)
    settings = Settings(allow_local_sources=True, allowed_source_roots=(str(root),), sandbox=sandbox,
                        work_root=str(tmp_path / "work"))
    for name in (f"alt-{sandbox}", f"sep-{sandbox}", f"wt-{sandbox}"):
        with pytest.raises(SourceError) as err:
            fetch_mod.fetch_source(settings, _record(f"file://{root}/{name}"), tmp_path / f"src-{name}", Redactor())
        assert err.value.code == "path_not_allowed", (name, err.value.message)
        assert not (tmp_path / f"src-{name}").exists()
