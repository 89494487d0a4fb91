"""Path confinement shared by the API (artifact downloads, uploads) and the worker (sources).

Every check works on the path text first (no absolute paths, no ``..``, no encoded tricks), then on
the file system without following links: a symlink anywhere on the way is refused, so nothing
outside the root can be reached, whatever the links in it point at.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path

from tasks.errors import CodedError


class UnsafePath(CodedError, ValueError):
    """A path that may not be used; ``code`` is stable and shown to the user."""


_DRIVE = re.compile(r"^[A-Za-z]:")
NAME_MAX = 255  # bytes in one part of a path (Linux)
# Folders a source tree may nest: real trees stay far below, and Python's own tree walks (os.walk,
# shutil.rmtree, Path.mkdir) recurse once per level, so a deeper tree would crash them.
MAX_TREE_DEPTH = 100
PATH_MAX = 4095  # bytes in a whole path (Linux, without the NUL)


def clean_relative(relative: str, *, percent_ok: bool = False) -> list[str]:
    """The parts of a relative path, refusing anything that could leave its root.

    Refused: empty, absolute (``/x``, ``\\x``, ``C:x``), ``..`` or ``.`` parts, empty parts, NUL and
    control characters, ``%`` (an encoded traversal such as ``%2e%2e`` that one more decoding
    step somewhere would turn into ``..``) unless ``percent_ok`` (names that are never decoded),
    and names no file system takes (a part over ``NAME_MAX`` or a path over ``PATH_MAX`` bytes, a
    lone surrogate).
    """
    if not relative or "\x00" in relative or any(ord(c) < 0x20 for c in relative):
        raise UnsafePath("path_invalid", "the path is empty or holds control characters")
    if "%" in relative and not percent_ok:
        raise UnsafePath("path_invalid", "the path holds an encoded character")
    if relative.startswith(("/", "\\")) or _DRIVE.match(relative):
        raise UnsafePath("path_absolute", "the path must be relative")
    parts = relative.replace("\\", "/").split("/")
    if any(p == ".." for p in parts):
        raise UnsafePath("path_traversal", "the path must not contain '..'")
    if any(p in ("", ".") for p in parts):
        raise UnsafePath("path_invalid", "the path has empty or '.' parts")
    try:
        sizes = [len(os.fsencode(p)) for p in parts]
    except UnicodeEncodeError as exc:  # a lone surrogate: no file has that name
        raise UnsafePath("path_invalid", "the path is not a valid file name") from exc
    if sum(sizes) + len(sizes) - 1 > PATH_MAX or max(sizes) > NAME_MAX:
        raise UnsafePath("path_invalid", "the path, or a part of it, is too long")
    return parts


def confine(root: Path, relative: str, *, percent_ok: bool = False) -> Path:
    """``root/relative`` when it names something inside ``root`` reached without any symlink.

    The result may not exist yet (callers check); an existing symlink on the way is refused. A path
    that runs through a file (``ENOTDIR``) names nothing, like a missing one; one the file system
    finds too long (with the root in front) is ``path_invalid``.
    """
    parts = clean_relative(relative, percent_ok=percent_ok)
    current = Path(root)
    for part in parts:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return Path(root).joinpath(*parts)
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                raise UnsafePath("path_invalid", "the path is too long") from exc
            raise
        if stat.S_ISLNK(mode):
            raise UnsafePath("path_symlink", "the path runs through a symbolic link")
    return current


def inside(path: str | Path, roots: Iterable[str]) -> bool:
    """Whether ``path`` (resolved, links followed) lies inside one of ``roots`` (resolved)."""
    resolved = Path(path).resolve()
    for root in roots:
        base = Path(root).resolve()
        if resolved == base or base in resolved.parents:
            return True
    return False


def link_stays_inside(link_rel: str, target: str) -> bool:
    """Whether a link at ``link_rel`` (relative to a tree's root) pointing at ``target`` stays in the
    tree, judged on the text alone (the tree need not exist yet): absolute targets never do."""
    if not target or target.startswith(("/", "\\")) or _DRIVE.match(target) or "\x00" in target:
        return False
    depth: list[str] = link_rel.replace("\\", "/").split("/")[:-1]
    for part in target.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not depth:
                return False
            depth.pop()
        else:
            depth.append(part)
    return True
