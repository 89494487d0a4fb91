"""Archive sources (.tar, .tar.gz, .tgz, .tar.bz2, .zip): extracted member by member, never with
``extractall``, refusing anything that could write or point outside the tree.

Refused, each with a stable code: absolute member paths (``archive_absolute_path``), ``..``
(``archive_path_traversal``), links whose target leaves the tree (``archive_link_escape``),
device files, fifos and sockets (``archive_special_file``), members nested more than ``MAX_DEPTH``
folders deep (``archive_too_deep``: every tool that walks the tree, the extraction's own folder
creation included, recurses per level), and decompression bombs: more bytes than
``ARCHIVE_MAX_BYTES`` (``archive_too_large``), more members than ``MAX_REPO_FILES``
(``archive_too_many_files``), or more than ``ARCHIVE_MAX_RATIO`` times the archive's own size
(``archive_ratio_exceeded``). Sizes are counted on the bytes actually written, not on headers.
Nothing but ``SourceError`` leaves ``extract``.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tasks import archives
from tasks.pathsafe import MAX_TREE_DEPTH, UnsafePath, clean_relative, confine, inside, link_stays_inside
from tasks.settings import Settings
from workers.bundle import sha256_file
from workers.sources.base import FetchContext, FetchedSource
from workers.sources.directory import links_leaving
from workers.sources.errors import SourceError

SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar", ".zip")
_CHUNK = 1 << 16
# Folders a member may be nested in, the file's own name included (see tasks.pathsafe).
MAX_DEPTH = MAX_TREE_DEPTH


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_files: int
    max_ratio: int
    max_depth: int = MAX_DEPTH


@dataclass
class _Member:
    name: str
    kind: str  # file | dir | symlink | hardlink | special
    mode: int
    link: str = ""
    opener: Callable[[], IO[bytes]] | None = None


def fetch_archive(ctx: FetchContext) -> FetchedSource:
    """The ``archive`` source kind's fetcher (``tasks.sources.archive``): the archive extracted. Its
    hash is the archive file's own (what ``upload-archive`` answered as ``archive_hash``)."""
    s = ctx.settings
    path, upload = resolve_archive(s, ctx.values.get("archive_path") or "")
    limits = Limits(max_bytes=s.archive_max_bytes, max_files=s.max_repo_files, max_ratio=s.archive_max_ratio)
    digest = sha256_file(path)
    files = extract(path, ctx.dest, limits, ctx.should_stop)
    detail: dict[str, Any] = {"files": files, "archive_sha256": digest, "archive_size": path.stat().st_size}
    if upload:
        detail["filename"] = upload.get("filename")
    return FetchedSource("archive", digest, detail=detail)


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
    archive_format(real)
    return real, None


def archive_format(path: Path) -> str:
    name = path.name.lower()
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return "zip" if suffix == ".zip" else "tar"
    raise SourceError("archive_format_unsupported",
                      "the archive must end in .tar, .tar.gz, .tgz, .tar.bz2 or .zip")


def extract(archive: Path, dest: Path, limits: Limits, should_stop: Callable[[], bool] | None = None) -> int:
    """Extract ``archive`` into ``dest`` (created); returns the number of files written."""
    kind = archive_format(archive)
    dest.mkdir(parents=True, exist_ok=True)
    budget = _Budget(limits, archive.stat().st_size)
    files = 0
    try:
        members = _tar_members(archive) if kind == "tar" else _zip_members(archive)
        for member in members:
            if should_stop is not None and files % 64 == 0 and should_stop():
                raise SourceError("cancelled", "the scan was cancelled during extraction")
            files += 1
            if files > limits.max_files:
                raise SourceError("archive_too_many_files", f"the archive has more than {limits.max_files} members")
            _extract_one(member, dest, budget)
        _check_links(dest)
    except (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        # gzip and bz2 report a damaged stream as OSError; FileNotFoundError means a bad archive_path
        if isinstance(exc, FileNotFoundError) and not archive.exists():
            raise SourceError("archive_not_found", "the archive does not exist") from exc
        raise SourceError("archive_invalid", "the archive is damaged or not of its named format") from exc
    return files


class _Budget:
    """Bytes written so far, against the absolute cap and the expansion ratio."""

    def __init__(self, limits: Limits, archive_size: int) -> None:
        self.limits = limits
        self.ratio_cap = max(archive_size, 1) * limits.max_ratio
        self.written = 0

    def add(self, count: int) -> None:
        self.written += count
        if self.written > self.limits.max_bytes:
            raise SourceError("archive_too_large", f"the archive expands beyond {self.limits.max_bytes} bytes")
        if self.written > self.ratio_cap:
            raise SourceError("archive_ratio_exceeded",
                              f"the archive expands beyond {self.limits.max_ratio} times its own size")


def _normalise(name: str) -> str:
    """A member name as a clean relative path: ``./`` prefixes and empty or ``.`` parts are
    dropped (``tar -C dir -cf x.tar .`` writes them); absolute names and ``..`` stay and are refused."""
    text = name.replace("\\", "/")
    if text.startswith("/") or re.match(r"^[A-Za-z]:", text):
        return text
    return "/".join(p for p in text.split("/") if p not in ("", "."))


def _target(dest: Path, name: str) -> Path | None:
    """Where a member goes, or None for the archive's root folder itself."""
    rel = _normalise(name)
    if not rel:
        return None
    try:
        parts = clean_relative(rel, percent_ok=True)
    except UnsafePath as exc:
        code = {"path_absolute": "archive_absolute_path",
                "path_traversal": "archive_path_traversal"}.get(exc.code, "archive_path_invalid")
        raise SourceError(code, f"archive member {name[:200]!r} is refused: {exc}") from exc
    try:
        # Never write through a link created by an earlier member.
        return confine(dest, "/".join(parts), percent_ok=True)
    except UnsafePath as exc:
        raise SourceError("archive_link_escape", f"archive member {name[:200]!r} runs through a link") from exc


def _extract_one(member: _Member, dest: Path, budget: _Budget) -> None:
    if member.kind == "special":
        raise SourceError("archive_special_file",
                          f"archive member {member.name[:200]!r} is a device file, fifo or socket")
    target = _target(dest, member.name)
    if target is None:
        return
    rel = target.relative_to(dest).as_posix()
    if rel.count("/") >= budget.limits.max_depth:
        raise SourceError("archive_too_deep",
                          f"archive member {member.name[:200]!r} is nested more than "
                          f"{budget.limits.max_depth} levels deep")
    if member.kind == "dir":
        target.mkdir(parents=True, exist_ok=True)
        return
    _mkparents(dest, target)
    if target.exists() or target.is_symlink():
        raise SourceError("archive_duplicate_member", f"archive member {member.name[:200]!r} appears twice")
    if member.kind == "symlink":
        if not link_stays_inside(rel, member.link):
            raise SourceError("archive_link_escape",
                              f"archive member {member.name[:200]!r} links outside the tree")
        os.symlink(member.link, target)
        return
    if member.kind == "hardlink":
        try:
            source = confine(dest, "/".join(clean_relative(_normalise(member.link), percent_ok=True)),
                             percent_ok=True)
        except UnsafePath as exc:
            raise SourceError("archive_link_escape",
                              f"archive member {member.name[:200]!r} links outside the tree") from exc
        if not source.is_file() or source.is_symlink():
            raise SourceError("archive_link_escape",
                              f"archive member {member.name[:200]!r} links to nothing extracted before it")
        budget.add(source.stat().st_size)
        shutil.copyfile(source, target)  # a copy, so no inode is shared with anything
        return
    assert member.opener is not None
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as out, member.opener() as src:
        while chunk := src.read(_CHUNK):
            budget.add(len(chunk))
            out.write(chunk)
    os.chmod(target, 0o755 if member.mode & 0o111 else 0o644)


def _mkparents(dest: Path, target: Path) -> None:
    parent = target.parent
    if parent != dest:
        try:
            confine(dest, parent.relative_to(dest).as_posix(), percent_ok=True)
        except UnsafePath as exc:
            raise SourceError("archive_link_escape", "an archive member runs through a link") from exc
        parent.mkdir(parents=True, exist_ok=True)


def _check_links(dest: Path) -> None:
    """Links may point at other links: judge where each really ends up, once all exist."""
    for path in links_leaving(dest):
        raise SourceError("archive_link_escape", f"link {path.relative_to(dest)} leads outside the tree")


def _tar_members(archive: Path) -> Iterator[_Member]:
    with tarfile.open(archive, "r:*") as tar:
        for info in tar:
            if info.isdir():
                yield _Member(info.name, "dir", info.mode)
            elif info.isreg():
                yield _Member(info.name, "file", info.mode, opener=_tar_opener(tar, info))
            elif info.issym():
                yield _Member(info.name, "symlink", info.mode, link=info.linkname)
            elif info.islnk():
                yield _Member(info.name, "hardlink", info.mode, link=info.linkname)
            else:
                yield _Member(info.name, "special", info.mode)


def _tar_opener(tar: tarfile.TarFile, info: tarfile.TarInfo) -> Callable[[], IO[bytes]]:
    def opener() -> IO[bytes]:
        fh = tar.extractfile(info)
        if fh is None:
            raise tarfile.TarError("unreadable member")
        return fh
    return opener


def _zip_members(archive: Path) -> Iterator[_Member]:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            mode = info.external_attr >> 16
            if info.is_dir():
                yield _Member(info.filename, "dir", mode)
            elif stat.S_ISLNK(mode):
                with zf.open(info) as fh:
                    target = fh.read(4096).decode("utf-8", "replace")
                yield _Member(info.filename, "symlink", mode, link=target)
            elif mode and (stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
                yield _Member(info.filename, "special", mode)
            else:
                yield _Member(info.filename, "file", mode, opener=_zip_opener(zf, info))


def _zip_opener(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], IO[bytes]]:
    return lambda: zf.open(info)
