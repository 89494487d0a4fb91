"""Directory sources: a copy of a folder under an allowed root, made without following any link
out of it, and the content hash every source type records.

Only regular files, folders and links whose text stays inside the folder are copied; links that
leave it, device files, fifos and sockets are skipped and counted (a warning names how many).
Links that leave the copy only once other links are followed are judged, as for every source
type, by ``workers.sources.links`` once the copy is complete.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tasks.pathsafe import MAX_TREE_DEPTH, inside, link_stays_inside
from workers.bundle import sha256_file
from workers.sources.base import FetchContext, FetchedSource
from workers.sources.errors import SourceError
from workers.sources.links import links_leaving as links_leaving


@dataclass
class CopyReport:
    files: int = 0
    bytes: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


def fetch_directory(ctx: FetchContext) -> FetchedSource:
    """The ``directory`` source kind's fetcher (``tasks.sources.directory``): a copy of the folder."""
    s = ctx.settings
    report = copy_directory(ctx.values.get("directory_path") or "", ctx.dest, s.allowed_source_roots,
                            max_files=s.max_repo_files, max_bytes=s.max_repo_bytes, should_stop=ctx.should_stop)
    warnings = [{"code": "source_entries_skipped", "message": f"{count} {what} were not copied"}
                for what, count in sorted(report.skipped.items())]
    return FetchedSource("directory", detail={"files": report.files, "bytes": report.bytes}, warnings=warnings)


def copy_directory(source: str, dest: Path, roots: tuple[str, ...], *, max_files: int, max_bytes: int,
                   should_stop: Callable[[], bool] | None = None) -> CopyReport:
    src = Path(source)
    # The API checked this at submit; the folder (or a link on its way) may have changed since.
    if not src.is_absolute() or not inside(src, roots):
        raise SourceError("path_not_allowed", "the directory lies outside the allowed roots")
    real = src.resolve()
    if not real.is_dir():
        raise SourceError("directory_not_found", "the directory does not exist")
    report = CopyReport()
    dest.mkdir(parents=True, exist_ok=True)
    _copy(real, real, dest, report, max_files, max_bytes, should_stop)
    return report


def _copy(root: Path, folder: Path, dest: Path, report: CopyReport, max_files: int, max_bytes: int,
          should_stop: Callable[[], bool] | None, depth: int = 0) -> None:
    if should_stop is not None and should_stop():
        raise SourceError("cancelled", "the scan was cancelled while copying the directory")
    if depth >= MAX_TREE_DEPTH:
        raise SourceError("source_too_deep", f"the directory nests folders more than {MAX_TREE_DEPTH} levels deep")
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            st = entry.stat(follow_symlinks=False)
            target = dest / entry.name
            if stat.S_ISDIR(st.st_mode):
                target.mkdir()
                _copy(root, Path(entry.path), target, report, max_files, max_bytes, should_stop, depth + 1)
                continue
            if stat.S_ISLNK(st.st_mode):
                rel = Path(entry.path).relative_to(root).as_posix()
                link = os.readlink(entry.path)
                if link_stays_inside(rel, link):
                    os.symlink(link, target)
                else:
                    report.skipped["links leaving the folder"] = report.skipped.get("links leaving the folder", 0) + 1
                continue
            if not stat.S_ISREG(st.st_mode):
                report.skipped["special files"] = report.skipped.get("special files", 0) + 1
                continue
            report.files += 1
            report.bytes += st.st_size
            if report.files > max_files:
                raise SourceError("too_many_files", f"the directory has more than {max_files} files")
            if report.bytes > max_bytes:
                raise SourceError("source_too_large", f"the directory holds more than {max_bytes} bytes")
            _copy_file(entry.path, target, st.st_mode)


def _copy_file(source: str, target: Path, mode: int) -> None:
    # O_NOFOLLOW: the entry was a regular file a moment ago; refuse it if it became a link since.
    fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as src, target.open("xb") as out:
        while chunk := src.read(1 << 20):
            out.write(chunk)
    os.chmod(target, 0o755 if mode & 0o111 else 0o644)


def tree_hash(root: Path) -> str:
    """sha256 over every file and link of a tree (``.git`` excluded), in path order: the same
    content gives the same hash wherever and whenever it was fetched."""
    h = hashlib.sha256()
    entries: list[tuple[str, str, str]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == str(root) and ".git" in dirnames:
            dirnames.remove(".git")
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                entries.append((rel, "link", os.readlink(path)))
            elif path.is_file():
                entries.append((rel, "file", sha256_file(path)))
    for rel, kind, value in sorted(entries):
        h.update(f"{rel}\0{kind}\0{value}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()
