"""Refreshing the local database from OSV's public dumps (or from dump files copied in by hand)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from workers.bundle import sha256_file
from workers.osv.database import METADATA, SUFFIX, read_metadata, write_index

DEFAULT_SOURCE = "https://osv-vulnerabilities.storage.googleapis.com"
MAX_DUMP_BYTES = 4 * 1024**3


class RefreshError(RuntimeError):
    pass


def _check_dump(path: Path) -> int:
    """A dump must be a zip of JSON advisories; returns how many members it has."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith(".json")]
            bad = archive.testzip()
    except zipfile.BadZipFile as exc:
        raise RefreshError(f"not a zip file: {exc}") from exc
    if bad is not None:
        raise RefreshError(f"corrupt member {bad}")
    if not names:
        raise RefreshError("the zip holds no JSON advisories")
    return len(names)


def _download(url: str, target: Path, timeout: float) -> str:
    digest = hashlib.sha256()
    size = 0
    try:
        with requests.get(url, stream=True, timeout=timeout) as resp:
            if resp.status_code != 200:
                raise RefreshError(f"{url} answered HTTP {resp.status_code}")
            with target.open("wb") as out:
                for chunk in resp.iter_content(1024 * 1024):
                    size += len(chunk)
                    if size > MAX_DUMP_BYTES:
                        raise RefreshError(f"{url} is larger than {MAX_DUMP_BYTES} bytes")
                    digest.update(chunk)
                    out.write(chunk)
    except requests.RequestException as exc:
        raise RefreshError(f"cannot download {url}: {exc.__class__.__name__}: {exc}") from exc
    return digest.hexdigest()


def _install(db: Path, ecosystem: str, tmp: Path, record: dict[str, Any]) -> dict[str, Any]:
    members = _check_dump(tmp)
    target = db / f"{ecosystem}{SUFFIX}"
    tmp.chmod(0o644)  # public advisories, read by the osv scanner as the sandbox's user
    os.replace(tmp, target)
    index = write_index(ecosystem, target)
    meta = read_metadata(db)
    meta.setdefault("ecosystems", {})[ecosystem] = {**record, "members": members,
                                                     "advisories": index["advisories"],
                                                     "newest_modified": index["newest_modified"]}
    out = db / METADATA
    tmp_meta = out.with_name(out.name + ".tmp")
    tmp_meta.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    os.replace(tmp_meta, out)
    return dict(meta["ecosystems"][ecosystem])


def refresh(db: Path, ecosystems: list[str], source: str = DEFAULT_SOURCE, timeout: float = 60) -> dict[str, Any]:
    """Download each ecosystem's ``all.zip``; the database is changed only by complete, valid
    downloads, so a failed refresh leaves the previous data in place."""
    db.mkdir(parents=True, exist_ok=True)
    done = {}
    for ecosystem in ecosystems:
        if not ecosystem or "/" in ecosystem or ecosystem.startswith("."):
            raise RefreshError(f"not an ecosystem name: {ecosystem!r}")
        url = f"{source.rstrip('/')}/{ecosystem}/all.zip"
        fd, name = tempfile.mkstemp(prefix=f".{ecosystem}.", suffix=".part", dir=db)
        os.close(fd)
        tmp = Path(name)
        try:
            sha = _download(url, tmp, timeout)
            done[ecosystem] = _install(db, ecosystem, tmp, {
                "url": url, "sha256": sha, "fetched_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")})
        finally:
            tmp.unlink(missing_ok=True)
    return done


def import_file(db: Path, ecosystem: str, dump: Path) -> dict[str, Any]:
    """Install a dump copied by hand (air-gapped deployments)."""
    db.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{ecosystem}.", suffix=".part", dir=db)
    os.close(fd)
    tmp = Path(name)
    try:
        shutil.copyfile(dump, tmp)
        sha = sha256_file(tmp)
        return _install(db, ecosystem, tmp, {
            "url": f"file:{dump.resolve()}", "sha256": sha,
            "fetched_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")})
    finally:
        tmp.unlink(missing_ok=True)
