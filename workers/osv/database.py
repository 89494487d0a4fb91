"""The local OSV database: a folder of ``<Ecosystem>-all.zip`` files (OSV's per-ecosystem dumps,
one JSON advisory per member), an optional ``<Ecosystem>-all.index.json`` per dump (package name
-> members, built by ``refresh``) and ``osv-db.json`` (where and when each dump was fetched)."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workers.osv.versions import normalise_name

METADATA = "osv-db.json"
SUFFIX = "-all.zip"
MAX_MEMBER_BYTES = 8 * 1024 * 1024  # one advisory; anything larger is not an advisory


class DatabaseError(RuntimeError):
    pass


def dumps(db: Path) -> dict[str, Path]:
    """Ecosystem -> dump file, for every dump in the database folder."""
    if not db.is_dir():
        return {}
    return {p.name[: -len(SUFFIX)]: p for p in sorted(db.glob(f"*{SUFFIX}")) if p.is_file()}


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _index_path(dump: Path) -> Path:
    return dump.with_name(dump.name[: -len(".zip")] + ".index.json")


def _stamp(dump: Path) -> dict[str, int]:
    st = dump.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> dict[str, Any] | None:
    if info.is_dir() or not info.filename.endswith(".json") or info.file_size > MAX_MEMBER_BYTES:
        return None
    try:
        data = json.loads(archive.read(info))
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) and "id" in data else None


def build_index(ecosystem: str, dump: Path) -> dict[str, Any]:
    """Package name -> member names, plus the count and the newest ``modified`` time."""
    names: dict[str, list[str]] = {}
    newest: datetime | None = None
    count = 0
    with zipfile.ZipFile(dump) as archive:
        for info in archive.infolist():
            adv = _read_member(archive, info)
            if adv is None:
                continue
            count += 1
            modified = _parse_time(adv.get("modified"))
            if modified and (newest is None or modified > newest):
                newest = modified
            for affected in adv.get("affected") or []:
                pkg = affected.get("package") or {}
                if pkg.get("ecosystem") == ecosystem and pkg.get("name"):
                    members = names.setdefault(normalise_name(ecosystem, str(pkg["name"])), [])
                    if info.filename not in members:
                        members.append(info.filename)
    return {"format": 1, "ecosystem": ecosystem, "dump": _stamp(dump), "advisories": count,
            "newest_modified": _iso(newest), "packages": names}


def write_index(ecosystem: str, dump: Path) -> dict[str, Any]:
    index = build_index(ecosystem, dump)
    target = _index_path(dump)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(index, separators=(",", ":")))
    tmp.replace(target)
    return index


def load_index(ecosystem: str, dump: Path) -> dict[str, Any]:
    """The dump's index when it is current, else one built in memory (never written here: the
    database folder may be read-only for the scanners)."""
    path = _index_path(dump)
    if path.is_file():
        try:
            index = json.loads(path.read_text())
            if index.get("format") == 1 and index.get("dump") == _stamp(dump):
                return dict(index)
        except ValueError:
            pass
    return build_index(ecosystem, dump)


def read_metadata(db: Path) -> dict[str, Any]:
    try:
        data = json.loads((db / METADATA).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass
class Database:
    path: Path
    indexes: dict[str, dict[str, Any]] = field(default_factory=dict)
    dump_files: dict[str, Path] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, path: Path) -> Database:
        found = dumps(path)
        if not found:
            raise DatabaseError(f"no OSV dumps (*{SUFFIX}) in {path}; run `python -m workers.osv refresh`")
        db = cls(path=path, dump_files=found, metadata=read_metadata(path))
        for ecosystem, dump in found.items():
            try:
                db.indexes[ecosystem] = load_index(ecosystem, dump)
            except (OSError, zipfile.BadZipFile) as exc:
                raise DatabaseError(f"{dump.name} is not a readable OSV dump: {exc}") from exc
        return db

    @property
    def ecosystems(self) -> list[str]:
        return sorted(self.dump_files)

    def advisories(self, ecosystem: str, name: str) -> Iterator[dict[str, Any]]:
        """Every advisory (not withdrawn) that names ``name`` in ``ecosystem``."""
        index = self.indexes.get(ecosystem)
        if index is None:
            return
        members = index["packages"].get(normalise_name(ecosystem, name), [])
        if not members:
            return
        with zipfile.ZipFile(self.dump_files[ecosystem]) as archive:
            for member in members:
                adv = _read_member(archive, archive.getinfo(member))
                if adv is not None and not adv.get("withdrawn"):
                    yield adv

    def describe(self, now: datetime | None = None) -> dict[str, Any]:
        """Where the data came from and how old it is, per ecosystem and overall."""
        now = now or datetime.now(UTC)
        fetched = self.metadata.get("ecosystems") or {}
        out: dict[str, Any] = {}
        oldest_age: float | None = None
        for ecosystem in self.ecosystems:
            index = self.indexes[ecosystem]
            meta = fetched.get(ecosystem) or {}
            newest = _parse_time(index.get("newest_modified"))
            fetched_at = _parse_time(meta.get("fetched_at"))
            age_days = round((now - newest).total_seconds() / 86400, 1) if newest else None
            if age_days is not None:
                oldest_age = age_days if oldest_age is None else max(oldest_age, age_days)
            out[ecosystem] = {
                "file": self.dump_files[ecosystem].name,
                "advisories": index.get("advisories"),
                "newest_advisory_modified": index.get("newest_modified"),
                "age_days": age_days,
                "source": meta.get("url") or "unknown (installed by hand; no refresh record)",
                "fetched_at": _iso(fetched_at),
                "sha256": meta.get("sha256"),
            }
        return {"path": str(self.path), "ecosystems": out, "age_days": oldest_age,
                "checked_at": _iso(now)}

