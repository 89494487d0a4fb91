"""Uploaded archives, shared by the API (which stores them) and the worker (which extracts them).

``{ARCHIVES_ROOT}/{id}{suffix}`` holds the archive and ``{ARCHIVES_ROOT}/{id}.json`` its metadata
(``filename``, ``stored``, ``archive_hash``, ``size``, ``created_at``, ``workspaces``). The id is
what a client passes as ``archive_path``.

An upload belongs to workspaces (``workspaces``: the one the client named, or the uploading key's):
only a scan of one of them may use it (``usable_in``).
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Any

UPLOAD_ID = re.compile(r"^upload_[0-9a-f]{32}\Z")
ALL_WORKSPACES = "*"
SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar", ".zip")


def new_archive_id() -> str:
    return "upload_" + secrets.token_hex(16)


def is_archive_id(value: str) -> bool:
    return bool(UPLOAD_ID.match(value))


def archive_suffix(filename: str) -> str | None:
    lower = filename.lower()
    return next((s for s in SUFFIXES if lower.endswith(s)), None)


def load(root: str | Path, archive_id: str) -> tuple[Path, dict[str, Any]] | None:
    """The stored archive and its metadata, or None when there is no such upload."""
    if not is_archive_id(archive_id):
        return None
    folder = Path(root)
    try:
        meta = json.loads((folder / f"{archive_id}.json").read_text())
    except (OSError, ValueError):
        return None
    stored = folder / str(meta.get("stored", ""))
    if stored.parent != folder or not stored.name.startswith(archive_id) or stored.is_symlink() \
            or not stored.is_file():
        return None
    return stored, meta


def usable_in(meta: dict[str, Any], workspace_id: str, all_workspaces: bool) -> bool:
    """Whether a scan of ``workspace_id``, submitted by a key holding every workspace or not
    (``all_workspaces``), may use the upload described by ``meta``: the scan's workspace must be one
    of the upload's. An upload of ``*`` (from a key of every workspace that named none) serves only
    keys of every workspace; so does one stored before uploads recorded their workspaces."""
    owners = meta.get("workspaces", [ALL_WORKSPACES])
    if not isinstance(owners, list):
        return False
    return workspace_id in owners or (ALL_WORKSPACES in owners and all_workspaces)
