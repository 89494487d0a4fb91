"""Reading a scan's bundle from ARTIFACT_ROOT for the artifact endpoints, path-confined."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
from pathlib import Path
from typing import IO, Any

from app.services.errors import Forbidden, Malformed, NotFound, ServiceError
from tasks.pathsafe import UnsafePath, confine
from tasks.records import ScanRecord

_CODES = {"path_traversal": "artifact_path_traversal", "path_absolute": "artifact_path_absolute",
          "path_symlink": "artifact_path_symlink", "path_invalid": "artifact_path_invalid"}


def bundle_root(artifact_root: str, scan: ScanRecord) -> Path:
    """The bundle folder of a scan (one ``ScanService.get`` returned to the caller)."""
    root = Path(artifact_root) / scan.test_id
    try:
        mode = os.lstat(root).st_mode
    except FileNotFoundError as exc:
        raise NotFound("artifacts_not_found", "the scan has no artifact bundle (yet)") from exc
    if not stat.S_ISDIR(mode):
        raise NotFound("artifacts_not_found", "the scan has no artifact bundle (yet)")
    return root


def _sha256(fh: io.BufferedReader) -> str:
    return hashlib.file_digest(fh, "sha256").hexdigest()


def list_files(root: Path) -> list[dict[str, Any]]:
    """Every regular file of the bundle with its size and sha256; links are never followed."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not os.path.islink(os.path.join(dirpath, d)))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:
                continue  # a link or gone: not part of the bundle
            with os.fdopen(fd, "rb") as fh:
                st = os.fstat(fh.fileno())
                if not stat.S_ISREG(st.st_mode):
                    continue
                out.append({"path": path.relative_to(root).as_posix(), "size": st.st_size, "sha256": _sha256(fh)})
    return sorted(out, key=lambda item: item["path"])


def open_file(root: Path, relative: str) -> IO[bytes]:
    """An open handle on one regular file of the bundle, or a refusal with a stable code."""
    try:
        path = confine(root, relative)
    except UnsafePath as exc:
        refusal = Forbidden if exc.code == "path_symlink" else Malformed
        raise refusal(_CODES.get(exc.code, "artifact_path_invalid"), str(exc)) from exc
    except OSError as exc:  # a part of the path the service cannot read
        raise _open_error(exc) from exc
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise _open_error(exc) from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotFound("artifact_not_found", "no such file in the bundle")
    return os.fdopen(fd, "rb")


def _open_error(exc: OSError) -> ServiceError:
    """The answer for a bundle file that cannot be opened: a link (``ELOOP``, created after the
    check) is refused, a name too long for the file system is malformed, anything else is no file
    of the bundle."""
    if exc.errno == errno.ELOOP:
        return Forbidden("artifact_path_symlink", "the path runs through a symbolic link")
    if exc.errno == errno.ENAMETOOLONG:
        return Malformed("artifact_path_invalid", "the path is too long")
    return NotFound("artifact_not_found", "no such file in the bundle")
