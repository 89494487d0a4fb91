"""A scan's artifact bundle: written in a staging folder, moved into place when complete.

Every path is confined to the bundle; nothing outside it is ever written.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any


def storage_full(exc: OSError) -> bool:
    """The disk (or the user's quota) is full: a condition of the machine, not of the scan."""
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


class BundlePathError(ValueError):
    pass


def confine(root: Path, relative: str) -> Path:
    """``root / relative``, refusing absolute paths, ``..`` and anything that resolves outside."""
    if not relative or relative.startswith(("/", "\\")) or "\x00" in relative:
        raise BundlePathError(f"not a bundle path: {relative!r}")
    parts = relative.replace("\\", "/").split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise BundlePathError(f"not a bundle path: {relative!r}")
    target = (root / "/".join(parts)).resolve()
    if root.resolve() not in target.parents:
        raise BundlePathError(f"outside the bundle: {relative!r}")
    return target


class Bundle:
    def __init__(self, artifact_root: str, test_id: str, attempt_token: str) -> None:
        self.root = Path(artifact_root)
        self.test_id = test_id
        self.final = self.root / test_id
        # Created by the first write: a scan that stops before writing anything (a full disk
        # among the reasons) leaves no folder behind.
        self.staging = self.root / ".staging" / f"{test_id}.{attempt_token}"

    def path(self, relative: str) -> Path:
        return confine(self.staging, relative)

    def write_bytes(self, relative: str, data: bytes) -> Path:
        target = self.path(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
        return target

    def write_json(self, relative: str, obj: Any) -> Path:
        return self.write_bytes(relative, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())

    def files(self) -> list[str]:
        """Every file in the bundle, bundle-relative, sorted."""
        out = []
        for path in self.staging.rglob("*"):
            if path.is_file():
                out.append(path.relative_to(self.staging).as_posix())
        return sorted(out)

    def digests(self) -> dict[str, str]:
        return {rel: sha256_file(self.staging / rel) for rel in self.files()}

    def publish(self) -> Path:
        """Move the finished bundle into place, replacing any left by an earlier attempt, and
        remove what earlier attempts of the scan left in staging (killed mid-write: only the
        attempt holding the scan's lease publishes, so none of them can finish any more)."""
        if self.final.exists():
            shutil.rmtree(self.final)
        os.replace(self.staging, self.final)
        for leftover in self.staging.parent.glob(f"{self.test_id}.*"):
            if leftover.name.split(".", 1)[0] == self.test_id:
                shutil.rmtree(leftover, ignore_errors=True)
        return self.final

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def sha256_file(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
