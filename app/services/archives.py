"""Storing uploaded archives under ARCHIVES_ROOT (see tasks/archives.py for the layout), each with
the workspaces it belongs to, and checking that a scan may use one."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import unicodedata
import zipfile
from pathlib import Path
from typing import IO, Any

from app.services.access import check_workspace, require
from app.services.errors import Invalid, TooLarge
from tasks import archives
from tasks.api_keys import Principal
from tasks.clock import utcnow_iso
from tasks.settings import Settings


def clean_filename(name: str) -> str:
    """The file's own name, without folders or control characters, for display only."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in unicodedata.normalize("NFC", base) if c.isprintable())
    return base[-200:] or "archive"


def _looks_like(path: Path, suffix: str) -> bool:
    try:
        if suffix == ".zip":
            return zipfile.is_zipfile(path)
        with tarfile.open(path, "r:*") as tar:
            tar.next()
        return True
    except (tarfile.TarError, OSError, EOFError):
        return False


def owners(principal: Principal | None, workspace_id: str | None) -> list[str]:
    """The workspaces an archive uploaded by the caller belongs to: the one named, which the caller
    must hold, or the caller's own."""
    if workspace_id is None:
        return sorted(require(principal).workspaces)
    check_workspace(principal, workspace_id)
    return [workspace_id]


def store_upload(settings: Settings, principal: Principal | None, filename: str, stream: IO[bytes],
                 workspace_id: str | None = None) -> dict[str, Any]:
    """Store the archive read from ``stream`` for scans of ``workspace_id`` (one the caller holds)
    or, without it, of the caller's own workspaces."""
    workspaces = owners(principal, workspace_id)
    filename = clean_filename(filename)
    suffix = archives.archive_suffix(filename)
    if suffix is None:
        raise Invalid("archive_format_unsupported", "the file name must end in .tar, .tar.gz, .tgz, .tar.bz2 or .zip",
                      fields={"file": ["unsupported archive type"]})
    folder = Path(settings.archives_root)
    folder.mkdir(parents=True, exist_ok=True)
    archive_id = archives.new_archive_id()
    stored = folder / f"{archive_id}{suffix}"
    partial = folder / f"{archive_id}.part"
    digest = hashlib.sha256()
    size = 0
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(1 << 20):
                size += len(chunk)
                if size > settings.archive_file_max_bytes:
                    raise TooLarge("payload_too_large",
                                   f"the archive is larger than {settings.archive_file_max_bytes} bytes")
                digest.update(chunk)
                out.write(chunk)
        if size == 0 or not _looks_like(partial, suffix):
            raise Invalid("archive_invalid", "the file is not a readable archive of its named type",
                          fields={"file": ["not a readable archive"]})
        os.replace(partial, stored)
    finally:
        partial.unlink(missing_ok=True)
    meta = {"archive_path": archive_id, "archive_hash": digest.hexdigest(), "filename": filename, "size": size,
            "stored": stored.name, "created_at": utcnow_iso(), "workspaces": sorted(set(workspaces))}
    tmp = folder / f"{archive_id}.json.tmp"
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, folder / f"{archive_id}.json")
    return {k: meta[k] for k in ("archive_path", "archive_hash", "filename", "size", "workspaces")}


