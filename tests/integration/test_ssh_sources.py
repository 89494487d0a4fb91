"""ssh git sources through the real ssh client against an SSH server on loopback: a workspace's deploy key from the
credentials file, host keys trusted only from GIT_SSH_KNOWN_HOSTS, and clear errors when either
does not fit."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tasks.records import ScanRecord
from tasks.settings import Settings
from tests.support.gitrepos import git, make_repo
from tests.support.sshd import Sshd
from workers.redact import Redactor
from workers.sources.errors import SourceError
from workers.sources.fetch import fetch_source


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    server = Sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture()
def setup(sshd, tmp_path):
    repo = make_repo(tmp_path / "repos", "app", {"app.py": "print('over ssh')\n"})
    head = git(repo, "rev-parse", "HEAD")
    creds = tmp_path / "git-credentials.json"
    creds.write_text(json.dumps({"ws-ssh": {"ssh_key": str(sshd.client_key), "hosts": [f"localhost:{sshd.port}"]},
                                 "ws-https": {"token": "t0ken", "hosts": ["localhost"]}}))
    settings = Settings(git_allowed_hosts=("localhost",), git_credentials_file=str(creds),
                        git_ssh_known_hosts=str(sshd.known_hosts), work_root=str(tmp_path / "work"))
    return repo, head, settings


def _fetch(settings, workspace, url, dest):
    record = ScanRecord(test_id="test_00000000abcd", workspace_id=workspace, component_id="c", assessment_id="a",
                        profile="light", source_type="git", git_url=url)
    return fetch_source(settings, record, dest, Redactor())


def test_a_workspace_deploy_key_clones_over_ssh(sshd, setup, tmp_path):
    repo, head, settings = setup
    fetched = _fetch(settings, "ws-ssh", sshd.url(repo), tmp_path / "checkout")
    assert fetched.commit == head and fetched.branch == "main"
    assert (tmp_path / "checkout" / "app.py").read_text() == "print('over ssh')\n"
    assert sshd.commands[-1] == ["git-upload-pack", str(repo.resolve())]  # over ssh, as a git host serves it


def test_an_untrusted_host_key_fails_the_clone(sshd, setup, tmp_path):
    repo, _, settings = setup
    (tmp_path / "empty_known_hosts").write_text("")
    untrusted = dataclasses.replace(settings, git_ssh_known_hosts=str(tmp_path / "empty_known_hosts"))
    with pytest.raises(SourceError) as exc:
        _fetch(untrusted, "ws-ssh", sshd.url(repo), tmp_path / "checkout")
    assert exc.value.code == "git_host_key_unverified"
    assert not (tmp_path / "checkout" / "app.py").exists()


@pytest.mark.parametrize("workspace", ["ws-https", "ws-none"])
def test_a_workspace_without_an_ssh_key_for_that_host_is_refused(sshd, setup, tmp_path, workspace):
    repo, _, settings = setup
    with pytest.raises(SourceError) as exc:
        _fetch(settings, workspace, sshd.url(repo), tmp_path / "checkout")
    assert exc.value.code == "git_auth_failed"


def test_a_key_is_never_offered_to_another_host(sshd, setup, tmp_path):
    # The entry names localhost:<port>; the same server reached as 127.0.0.1 gets no key.
    repo, _, settings = setup
    other = dataclasses.replace(settings, git_allowed_hosts=("localhost", "127.0.0.1"))
    with pytest.raises(SourceError) as exc:
        _fetch(other, "ws-ssh", sshd.url(repo, host="127.0.0.1"), tmp_path / "checkout")
    assert exc.value.code == "git_auth_failed"
