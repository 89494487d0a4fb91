"""Retention: finished records and streams expire in Redis; the command prunes bundles, leftovers
and index entries (real Redis, real folders, the real command)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from tasks.events import EventLog, stream_key
from tasks.records import ScanRecord
from tasks.settings import Settings
from tasks.store import QUEUED, RUNNING, SUCCEEDED, ScanStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def env(redis_url, tmp_path):
    url = redis_url.rsplit("/", 1)[0] + "/10"
    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushdb()
    settings = Settings(redis_url=url, artifact_root=str(tmp_path / "artifacts"), work_root=str(tmp_path / "work"),
                        retention_seconds=3600)
    yield settings, client
    client.flushdb()


def record(store: ScanStore, test_id: str) -> None:
    store.create(ScanRecord(test_id=test_id, workspace_id="ws", component_id="c", assessment_id="a",
                            profile="smoke", source_type="git"))


def test_finished_scans_expire_after_the_retention(env):
    settings, client = env
    store = ScanStore(client, retention_seconds=settings.retention_seconds)
    events = EventLog(client, retention_seconds=settings.retention_seconds)
    record(store, "test_aaaaaaaaaaaa")
    events.append("test_aaaaaaaaaaaa", "phase", phase="queued", message="q")
    assert client.ttl(store.key("test_aaaaaaaaaaaa")) == -1  # running scans never expire
    store.transition("test_aaaaaaaaaaaa", RUNNING)
    store.transition("test_aaaaaaaaaaaa", SUCCEEDED)
    events.expire("test_aaaaaaaaaaaa")
    assert 3500 < client.ttl(store.key("test_aaaaaaaaaaaa")) <= 3600
    assert 3500 < client.ttl(stream_key("test_aaaaaaaaaaaa")) <= 3600


def test_retention_command_prunes_bundles_leftovers_and_indexes(env):
    settings, client = env
    store = ScanStore(client, retention_seconds=settings.retention_seconds)
    art = Path(settings.artifact_root)
    for test_id in ("test_000000000001", "test_000000000002", "test_000000000003", "test_000000000004"):
        (art / test_id).mkdir(parents=True)
        (art / test_id / "scan.json").write_text("{}")
    record(store, "test_000000000002")  # live, queued: kept
    record(store, "test_000000000003")  # finished long ago: pruned
    store.transition("test_000000000003", RUNNING)
    store.transition("test_000000000003", SUCCEEDED, completed_at="2020-01-01T00:00:00.000Z")
    record(store, "test_000000000004")  # finished just now: kept
    store.transition("test_000000000004", RUNNING)
    store.transition("test_000000000004", SUCCEEDED, completed_at=time.strftime("%Y-%m-%dT%H:%M:%S.000Z",
                                                                                time.gmtime()))
    record(store, "test_000000000005")  # its record will have expired: index entries pruned
    client.delete(store.key("test_000000000005"))
    old = time.time() - 10 * 24 * 3600
    stale = art / ".staging" / "test_000000000009.dead"
    fresh = Path(settings.work_root) / "test_000000000008.live"
    for folder in (stale, fresh):
        folder.mkdir(parents=True)
    os.utime(stale, (old, old))
    run_env = {"PATH": "/usr/bin:/bin", "CERTUS_ASSURANCE_REDIS_URL": settings.redis_url,
               "CERTUS_ASSURANCE_ARTIFACT_ROOT": settings.artifact_root,
               "CERTUS_ASSURANCE_WORK_ROOT": settings.work_root, "CERTUS_ASSURANCE_RETENTION_SECONDS": "3600"}

    def run(*args):
        out = subprocess.run([sys.executable, "-m", "workers.retention", *args], cwd=ROOT, env=run_env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    dry = run("--dry-run")
    assert sorted(Path(p).name for p in dry["bundles"]) == ["test_000000000001", "test_000000000003"]
    assert (art / "test_000000000001").exists()
    done = run()
    assert done["bundles"] == dry["bundles"]
    assert [Path(p).name for p in done["leftovers"]] == [stale.name]
    assert done["index_entries"] == 3  # all, ws and status entries of the expired record
    assert sorted(p.name for p in art.iterdir() if p.name != ".staging") == ["test_000000000002",
                                                                             "test_000000000004"]
    assert fresh.exists() and not stale.exists()
    assert "test_000000000005" not in client.smembers(f"ca:status:{QUEUED}")


def test_retention_removes_old_uploads_unless_a_live_scan_names_them(env, tmp_path):
    settings, client = env
    store = ScanStore(client, retention_seconds=settings.retention_seconds)
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    old = time.time() - 8 * 24 * 3600

    def upload(archive_id: str, age: float) -> Path:
        archive = uploads / f"{archive_id}.tar.gz"
        archive.write_bytes(b"archive")
        meta = uploads / f"{archive_id}.json"
        meta.write_text(json.dumps({"stored": archive.name, "filename": "src.tar.gz"}))
        for path in (archive, meta):
            os.utime(path, (age, age))
        return archive

    stale = upload("upload_" + "a" * 32, old)  # old, unused: removed
    queued = upload("upload_" + "b" * 32, old)  # old, but a queued scan will extract it: kept
    recent = upload("upload_" + "c" * 32, time.time())  # new: kept
    store.create(ScanRecord(test_id="test_000000000021", workspace_id="ws", component_id="c", assessment_id="a",
                            profile="smoke", source_type="archive", archive_path="upload_" + "b" * 32))
    partial = uploads / ("upload_" + "d" * 32 + ".part")  # an upload that died mid-write
    partial.write_bytes(b"half")
    os.utime(partial, (old, old))
    run_env = {"PATH": "/usr/bin:/bin", "CERTUS_ASSURANCE_REDIS_URL": settings.redis_url,
               "CERTUS_ASSURANCE_ARTIFACT_ROOT": settings.artifact_root,
               "CERTUS_ASSURANCE_WORK_ROOT": settings.work_root, "CERTUS_ASSURANCE_ARCHIVES_ROOT": str(uploads)}
    out = subprocess.run([sys.executable, "-m", "workers.retention"], cwd=ROOT, env=run_env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    removed = sorted(Path(p).name for p in json.loads(out.stdout)["uploads"])
    assert removed == sorted([stale.name, stale.with_suffix("").with_suffix(".json").name, partial.name])
    assert not stale.exists() and not partial.exists()
    assert queued.exists() and recent.exists()
    assert (uploads / ("upload_" + "b" * 32 + ".json")).exists()
