"""The ``git`` source kind: a repository URL (``git_url``), and optionally a ``branch`` and a
pinned ``commit``. Fetched by ``workers.sources.git.fetch_git``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tasks.netpolicy import HostNotAllowed, check_local_source, check_url
from tasks.settings import Settings
from tasks.sources.base import CheckContext, FieldInvalid, SourceField, SourceKind, SourceRefused, shown_as_is
from tasks.sources.urls import check_netloc, split_url

COMMIT = r"^[0-9a-fA-F]{7,40}$"
GIT_SCHEMES = ("https", "http", "ssh", "git", "file")

# git check-ref-format rules, plus: no leading '-' (option injection), and no character that is not
# shown as itself (C1 controls, bidirectional and other format characters: `shown_as_is`).
_BAD_REF = re.compile(r"(^[-/.])|(\.\.)|(@\{)|([\x00-\x20\x7f~^:?*\[\\])|(//)|(/$)|(\.lock$)|(\.$)|(/\.)")
_SSH_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z")


def check_branch(value: str, settings: Settings | None = None) -> None:
    if not value or len(value) > 255 or _BAD_REF.search(value) or value == "@":
        raise FieldInvalid("not a valid branch name")
    shown_as_is(value)


def check_local_git_url(value: str, settings: Settings | None) -> None:
    """With local sources on, a local repository must lie inside ``ALLOWED_SOURCE_ROOTS`` once every
    link on its way is followed: ``path_not_allowed`` otherwise. With them off, the kind's check
    answers ``git_url_not_allowed``. Only the serving API's settings can judge it."""
    if settings is None:
        raise FieldInvalid("a local repository can only be checked by the service")
    if settings.allow_local_sources:
        check_local_source(value, settings.allow_local_sources, settings.allowed_source_roots)


def check_git_url(value: str, settings: Settings | None) -> None:
    if value.startswith("-"):
        raise FieldInvalid("must not begin with '-'")
    if "::" in value.split("/", 1)[0] or value.lower().startswith("ext::"):
        raise FieldInvalid("transport helpers (such as ext::) are not allowed")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in value) or "\\" in value:
        raise FieldInvalid("must not contain spaces, backslashes or control characters")
    shown_as_is(value)
    parts = split_url(value)
    if not parts.scheme and value.startswith("/"):
        if any(part == ".." for part in value.split("/")):
            raise FieldInvalid("a local path must not contain '..'")
        check_local_git_url(value, settings)
        return
    if parts.scheme not in GIT_SCHEMES:
        raise FieldInvalid(f"scheme must be one of {', '.join(GIT_SCHEMES)}")
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise FieldInvalid("must not carry a query or fragment")
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or any(p == ".." for p in parts.path.split("/")):
            raise FieldInvalid("a file URL must name a local absolute path without '..'")
        check_local_git_url(value, settings)
        return
    if not parts.hostname:
        raise FieldInvalid("must name a host")
    check_netloc(parts, value)
    if parts.password is not None:
        raise FieldInvalid("credentials belong in the workspace's git secret, not in the URL")
    if parts.username is not None:
        # https://trusted.example@10.0.0.1/ smuggles a host; ssh needs a user name, nothing more.
        if parts.scheme != "ssh" or not _SSH_USER.match(parts.username):
            raise FieldInvalid("credentials belong in the workspace's git secret, not in the URL")


class GitSource(SourceKind):
    name = "git"
    fields = (
        SourceField("git_url", required=True, max_length=2048, check=check_git_url),
        SourceField("branch", check=check_branch),
        SourceField("commit", pattern=COMMIT, normalise=str.lower),
    )
    fetcher = "workers.sources.git:fetch_git"

    def check(self, values: Mapping[str, Any], ctx: CheckContext) -> None:
        """The host must be one the service may reach (``tasks.netpolicy``), a local repository
        only with local sources on."""
        try:
            check_url(values["git_url"], ctx.settings.git_allowed_hosts, ctx.settings.allow_local_sources)
        except HostNotAllowed as exc:
            raise SourceRefused(exc.code, str(exc), field="git_url") from exc


KIND = GitSource()
