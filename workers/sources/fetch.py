"""The clone phase: bring any source type into the scan's workspace, remove the links in it that
are not safe to follow (``workers.sources.links``), and hash what is left."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks import archives
from tasks.netpolicy import HostNotAllowed, check_local_source, is_local_source
from tasks.pathsafe import inside
from tasks.records import ScanRecord
from tasks.settings import Settings
from workers.bundle import sha256_file
from workers.redact import Redactor
from workers.sources import archive, credentials, git
from workers.sources.directory import copy_directory, tree_hash
from workers.sources.errors import SourceError
from workers.sources.links import remove_unsafe_links


@dataclass
class FetchedSource:
    source_type: str
    hash: str
    commit: str | None = None
    branch: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    warnings: list[dict[str, str]] = field(default_factory=list)


def fetch_source(settings: Settings, record: ScanRecord, dest: Path, redactor: Redactor,
                 should_stop: Callable[[], bool] | None = None, full_history: bool = False) -> FetchedSource:
    """``full_history``: a git source is cloned with its whole history (a scanner reads it)."""
    fetched = _fetch(settings, record, dest, redactor, should_stop, full_history)
    warning = remove_unsafe_links(dest).warning()
    if warning is not None:
        fetched.warnings.append(warning)
    if fetched.source_type != "archive":  # an archive's hash is the archive file's own
        fetched.hash = tree_hash(dest)
    return fetched


def _fetch(settings: Settings, record: ScanRecord, dest: Path, redactor: Redactor,
           should_stop: Callable[[], bool] | None, full_history: bool) -> FetchedSource:
    kind = record.source_type
    if kind == "git":
        return _git(settings, record, dest, redactor, should_stop, full_history)
    if kind == "directory":
        report = copy_directory(record.directory_path or "", dest, settings.allowed_source_roots,
                                max_files=settings.max_repo_files, max_bytes=settings.max_repo_bytes,
                                should_stop=should_stop)
        warnings = [{"code": "source_entries_skipped", "message": f"{count} {what} were not copied"}
                    for what, count in sorted(report.skipped.items())]
        return FetchedSource("directory", "", detail={"files": report.files, "bytes": report.bytes},
                             warnings=warnings)
    if kind == "archive":
        path, upload = resolve_archive(settings, record.archive_path or "")
        limits = archive.Limits(max_bytes=settings.archive_max_bytes, max_files=settings.max_repo_files,
                                max_ratio=settings.archive_max_ratio)
        digest = sha256_file(path)
        files = archive.extract(path, dest, limits, should_stop)
        detail: dict[str, Any] = {"files": files, "archive_sha256": digest, "archive_size": path.stat().st_size}
        if upload:
            detail["filename"] = upload.get("filename")
        return FetchedSource("archive", digest, detail=detail)
    raise SourceError("source_type_unsupported", f"source type {kind} is not supported")


def _git(settings: Settings, record: ScanRecord, dest: Path, redactor: Redactor,
         should_stop: Callable[[], bool] | None, full_history: bool) -> FetchedSource:
    url = record.git_url or ""
    if is_local_source(url):
        # The API checked this at submit; the folder (or a link on its way) may have changed since.
        # The clone is given the real folder, so no link swapped in later redirects it.
        try:
            url = check_local_source(url, settings.allow_local_sources, settings.allowed_source_roots)
        except HostNotAllowed as exc:
            raise SourceError(exc.code, str(exc)) from exc
    creds = credentials.for_source(settings, record.workspace_id, url)
    if creds is not None and creds.token:
        # Registered before anything runs, so no event, log line or error can carry it.
        redactor.add(creds.token)
    checkout = git.fetch(settings, url, dest, branch=record.branch, commit=record.commit,
                         credentials=(creds.username, creds.token) if creds and creds.token else None,
                         ssh_key=creds.ssh_key if creds else None, should_stop=should_stop,
                         full_history=full_history)
    return FetchedSource("git", "", commit=checkout.commit, branch=checkout.branch)


def resolve_archive(settings: Settings, value: str) -> tuple[Path, dict[str, Any] | None]:
    """An upload id -> the stored upload; a path -> itself, checked again against the allowed roots."""
    if archives.is_archive_id(value):
        found = archives.load(settings.archives_root, value)
        if found is None:
            raise SourceError("archive_not_found", "no uploaded archive has that id")
        return found
    path = Path(value)
    if not path.is_absolute() or not inside(path, settings.allowed_source_roots):
        raise SourceError("path_not_allowed", "the archive lies outside the allowed roots")
    real = path.resolve()
    if not real.is_file():
        raise SourceError("archive_not_found", "the archive does not exist")
    archive.archive_format(real)
    return real, None
