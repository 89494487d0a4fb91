"""Git credentials for https/http sources: a workspace's entry in GIT_CREDENTIALS_FILE, else the
service-wide GIT_USERNAME/GIT_TOKEN. A token is only ever sent to the hosts it is meant for."""

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
    token: str

    def __repr__(self) -> str:  # never let a token reach a log line by accident
        return f"GitCredentials(username={self.username!r}, token='***')"


def _host_matches(url: str, hosts: list[str] | tuple[str, ...]) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    with_port = f"{host}:{parts.port}" if parts.port else host
    wanted = {h.strip().lower() for h in hosts}
    return host in wanted or with_port in wanted


def for_source(settings: Settings, workspace_id: str, url: str) -> GitCredentials | None:
    """The credentials to present for ``url`` on behalf of ``workspace_id``, if any."""
    if urlsplit(url).scheme not in ("https", "http"):
        return None
    if settings.git_credentials_file:
        entries = _load(settings.git_credentials_file)
        entry = entries.get(workspace_id) or entries.get("*")
        if entry is not None:
            hosts = entry.get("hosts")
            if hosts is None or (isinstance(hosts, list) and _host_matches(url, hosts)):
                return GitCredentials(str(entry.get("username") or "x-access-token"), str(entry["token"]))
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
        if not isinstance(entry, dict) or not isinstance(entry.get("token"), str) or not entry["token"]:
            raise SourceError("git_credentials_unreadable",
                              f"the git credentials entry for {key!r} needs a non-empty token")
        hosts = entry.get("hosts")
        if hosts is not None and not (isinstance(hosts, list) and all(isinstance(h, str) for h in hosts)):
            raise SourceError("git_credentials_unreadable", f"`hosts` of entry {key!r} must be a list of hosts")
        out[str(key)] = entry
    return out
