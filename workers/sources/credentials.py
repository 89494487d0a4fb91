"""Git credentials: for https/http sources a token, from a workspace's entry in
GIT_CREDENTIALS_FILE, else the service-wide GIT_USERNAME/GIT_TOKEN; for ssh sources a private key
file named by a workspace's entry. Either is only ever used for the hosts it is meant for."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tasks.settings import Settings
from workers.sources.errors import SourceError


@dataclass(frozen=True)
class GitCredentials:
    username: str
    token: str = ""
    ssh_key: str = ""  # a private key file, for ssh sources

    def __repr__(self) -> str:  # never let a token reach a log line by accident
        return f"GitCredentials(username={self.username!r}, token='***', ssh_key={self.ssh_key!r})"


def _host_matches(url: str, hosts: list[str] | tuple[str, ...]) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    with_port = f"{host}:{parts.port}" if parts.port else host
    wanted = {h.strip().lower() for h in hosts}
    return host in wanted or with_port in wanted


def for_source(settings: Settings, workspace_id: str, url: str) -> GitCredentials | None:
    """The credentials to present for ``url`` on behalf of ``workspace_id``, if any."""
    scheme = urlsplit(url).scheme
    if scheme not in ("https", "http", "ssh"):
        return None
    if settings.git_credentials_file:
        entries = _load(settings.git_credentials_file)
        entry = entries.get(workspace_id) or entries.get("*")
        if entry is not None:
            hosts = entry.get("hosts")
            if hosts is not None and not (isinstance(hosts, list) and _host_matches(url, hosts)):
                return None
            if scheme == "ssh":
                key = entry.get("ssh_key")
                return GitCredentials(urlsplit(url).username or "", ssh_key=str(key)) if key else None
            if not entry.get("token"):
                return None
            return GitCredentials(str(entry.get("username") or "x-access-token"), str(entry["token"]))
    if scheme == "ssh":
        return None
    if settings.git_token and _host_matches(url, settings.git_token_hosts):
        return GitCredentials(settings.git_username or "x-access-token", settings.git_token)
    return None


def _load(path: str) -> dict[str, dict[str, object]]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        # Name the file, never its content.
        raise SourceError("git_credentials_unreadable", "the git credentials file cannot be read") from exc
    if not isinstance(data, dict):
        raise SourceError("git_credentials_unreadable", "the git credentials file must hold a JSON object")
    out: dict[str, dict[str, object]] = {}
    for key, entry in data.items():
        given = [entry[name] for name in ("token", "ssh_key") if name in entry] if isinstance(entry, dict) else []
        if not given or not all(isinstance(value, str) and value for value in given):
            raise SourceError("git_credentials_unreadable",
                              f"the git credentials entry for {key!r} needs a non-empty token or ssh_key")
        if "ssh_key" in entry and not Path(str(entry["ssh_key"])).is_absolute():
            raise SourceError("git_credentials_unreadable",
                              f"the ssh_key of entry {key!r} must be an absolute path")
        hosts = entry.get("hosts")
        if hosts is not None and not (isinstance(hosts, list) and all(isinstance(h, str) for h in hosts)):
            raise SourceError("git_credentials_unreadable", f"`hosts` of entry {key!r} must be a list of hosts")
        out[str(key)] = entry
    return out
