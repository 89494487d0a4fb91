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
