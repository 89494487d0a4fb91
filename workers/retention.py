"""``python -m workers.retention [--dry-run]``: apply RETENTION_SECONDS to what Redis does not expire
on its own.

Scan records and event streams of finished scans carry a Redis TTL of RETENTION_SECONDS (set when
the scan ends). This command prunes the rest:

- bundles whose scan record has expired, or which finished more than RETENTION_SECONDS ago;
- staging folders and work folders left by attempts that died (older than the longest scan);
- index entries (listing and per-status sets) of records that have expired;
- uploaded archives older than ARCHIVE_RETENTION_SECONDS that no queued or running scan names,
  and partial uploads that never finished.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import redis

from tasks import archives, keyspace
from tasks.clock import parse_iso
from tasks.ids import is_test_id
from tasks.settings import Settings
from tasks.states import TERMINAL
from tasks.store import QUEUED, RUNNING, STATUSES, ScanStore

log = logging.getLogger(__name__)


class Retention:
    def __init__(self, settings: Settings, client: redis.Redis, *, dry_run: bool = False) -> None:
        self.settings = settings
        self.store = ScanStore(client, retention_seconds=settings.retention_seconds)
        self.redis = client
        self.dry_run = dry_run

    def _remove(self, path: Path, removed: list[str]) -> None:
        removed.append(str(path))
        if self.dry_run:
            return
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def prune_bundles(self) -> list[str]:
        removed: list[str] = []
        root = Path(self.settings.artifact_root)
        if not root.is_dir():
            return removed
        now = time.time()
        for bundle in sorted(root.iterdir()):
            if not bundle.is_dir() or not is_test_id(bundle.name):
                continue
            record = self.store.get_fields(bundle.name, "status", "completed_at")
            if record["status"] is None:
                self._remove(bundle, removed)  # the record has expired: so has its bundle
            elif record["status"] in TERMINAL and record["completed_at"]:
                age = now - parse_iso(record["completed_at"]).timestamp()
                if age > self.settings.retention_seconds:
                    self._remove(bundle, removed)
        return removed

    def prune_leftovers(self) -> list[str]:
        """Staging and work folders of attempts that died: none lives longer than the hard limit."""
        removed: list[str] = []
        cutoff = time.time() - self.settings.scan_hard_time_limit - 600
        for folder in (Path(self.settings.artifact_root) / ".staging", Path(self.settings.work_root)):
            if not folder.is_dir():
                continue
            for entry in sorted(folder.iterdir()):
                if entry.is_dir() and entry.stat().st_mtime < cutoff:
                    self._remove(entry, removed)
        return removed

    def prune_uploads(self) -> list[str]:
        removed: list[str] = []
        folder = Path(self.settings.archives_root)
        if not folder.is_dir():
            return removed
        now = time.time()
        in_use = self._uploads_in_use()
        for meta_file in sorted(folder.glob("upload_*.json")):
            archive_id = meta_file.name.removesuffix(".json")
            if not archives.is_archive_id(archive_id) or archive_id in in_use:
                continue
            if now - meta_file.stat().st_mtime <= self.settings.archive_retention_seconds:
                continue
            found = archives.load(folder, archive_id)
            for path in ([found[0]] if found else []) + [meta_file]:
                self._remove(path, removed)
        # An upload that died mid-write leaves its partial file (no metadata was ever written).
        cutoff = now - 3600
        for partial in sorted([*folder.glob("upload_*.part"), *folder.glob("upload_*.json.tmp")]):
            if partial.stat().st_mtime < cutoff:
                self._remove(partial, removed)
        return removed

    def _uploads_in_use(self) -> set[str]:
        """Upload ids named by scans that have not started or not finished."""
        names: set[str] = set()
        for status in (QUEUED, RUNNING):
            for test_id in self.store.ids_with_status(status):
                path = self.store.get_fields(test_id, "archive_path")["archive_path"]
                if isinstance(path, str) and archives.is_archive_id(path):
                    names.add(path)
        return names

    def prune_indexes(self) -> int:
        gone = 0
        indexes: list[str] = [keyspace.ALL_INDEX,
                                *(str(k) for k in self.redis.scan_iter(keyspace.WORKSPACE_INDEX_PREFIX + "*"))]
        sets = [keyspace.status_set(s) for s in STATUSES]
        for key in indexes + sets:
            members: Any = (self.redis.zrange(key, 0, -1) if key in indexes else self.redis.smembers(key))
            for test_id in members:
                if not self.store.exists(test_id):
                    gone += 1
                    if not self.dry_run:
                        (self.redis.zrem if key in indexes else self.redis.srem)(key, test_id)
        return gone

    def run(self) -> dict[str, Any]:
        return {"bundles": self.prune_bundles(), "leftovers": self.prune_leftovers(),
                "uploads": self.prune_uploads(), "index_entries": self.prune_indexes(), "dry_run": self.dry_run}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.retention")
    parser.add_argument("--dry-run", action="store_true", help="list what would be removed; remove nothing")
    args = parser.parse_args(argv)
    from tasks.redis_client import connect

    settings = Settings.from_env()
    print(json.dumps(Retention(settings, connect(settings.redis_url), dry_run=args.dry_run).run(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
