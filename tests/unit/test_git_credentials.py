"""Which git credentials a clone presents, and to which hosts."""

from __future__ import annotations

import json

import pytest

from tasks.settings import Settings, SettingsError
from workers.sources.credentials import for_source
from workers.sources.errors import SourceError


def test_workspace_entry_then_wildcard_then_service_token(tmp_path):
    path = tmp_path / "creds.json"
    path.write_text(json.dumps({
        "team-a": {"username": "alice", "token": "tok-a", "hosts": ["git.example.com"]},
        "*": {"token": "tok-any"},
    }))
    settings = Settings(git_credentials_file=str(path))
    creds = for_source(settings, "team-a", "https://git.example.com/r.git")
    assert creds is not None and (creds.username, creds.token) == ("alice", "tok-a")
    assert "tok-a" not in repr(creds)
    # a host the entry does not list never receives its token
    assert for_source(settings, "team-a", "https://evil.example.net/r.git") is None
    other = for_source(settings, "team-b", "https://any.example.org/r.git")
    assert other is not None and other.token == "tok-any" and other.username == "x-access-token"
    assert for_source(settings, "team-a", "git://git.example.com/r.git") is None


def test_service_token_only_for_its_hosts():
    settings = Settings(git_token="svc-token", git_token_hosts=("git.example.com:8443",))
    assert for_source(settings, "w", "https://git.example.com:8443/r").token == "svc-token"  # type: ignore[union-attr]
    assert for_source(settings, "w", "https://git.example.com/r") is None
    assert "svc-token" not in repr(settings)
    with pytest.raises(SettingsError):
        Settings.from_env({"CERTUS_ASSURANCE_GIT_TOKEN": "x"})


def test_unreadable_file_does_not_echo_content(tmp_path):
    path = tmp_path / "creds.json"
    path.write_text('{"w": {"token": ""}, "secret-canary-123": 1')
    with pytest.raises(SourceError) as err:
        for_source(Settings(git_credentials_file=str(path)), "w", "https://h/r")
    assert err.value.code == "git_credentials_unreadable" and "canary" not in err.value.message


def test_ssh_keys_go_only_to_ssh_sources_of_their_hosts(tmp_path):
    path = tmp_path / "creds.json"
    path.write_text(json.dumps({
        "team-a": {"ssh_key": "/keys/team-a", "hosts": ["git.example.com"]},
        "team-b": {"token": "tok-b", "ssh_key": "/keys/team-b"},
    }))
    settings = Settings(git_credentials_file=str(path))
    creds = for_source(settings, "team-a", "ssh://git@git.example.com/r.git")
    assert creds is not None and creds.ssh_key == "/keys/team-a" and creds.token == "" and creds.username == "git"
    assert for_source(settings, "team-a", "ssh://git@evil.example.net/r.git") is None  # not its host
    assert for_source(settings, "team-a", "https://git.example.com/r.git") is None  # no token: nothing to send
    both = for_source(settings, "team-b", "https://any.example.org/r.git")
    assert both is not None and both.token == "tok-b" and both.ssh_key == ""  # https gets the token only
    ssh = for_source(settings, "team-b", "ssh://git@any.example.org/r.git")
    assert ssh is not None and ssh.ssh_key == "/keys/team-b" and ssh.token == ""  # ssh gets the key only


@pytest.mark.parametrize("entry", [{"ssh_key": ""}, {"ssh_key": "relative/key"}, {"token": "t", "ssh_key": 3},
                                   {"hosts": ["h"]}])
def test_a_malformed_ssh_entry_is_refused(tmp_path, entry):
    path = tmp_path / "creds.json"
    path.write_text(json.dumps({"w": entry}))
    with pytest.raises(SourceError) as err:
        for_source(Settings(git_credentials_file=str(path)), "w", "ssh://git@h/r")
    assert err.value.code == "git_credentials_unreadable"


def test_known_hosts_must_be_an_absolute_path():
    with pytest.raises(SettingsError):
        Settings.from_env({"CERTUS_ASSURANCE_GIT_SSH_KNOWN_HOSTS": "known_hosts"})
    assert Settings.from_env({"CERTUS_ASSURANCE_GIT_SSH_KNOWN_HOSTS": "/etc/certus/known_hosts"}).git_ssh_known_hosts
