"""The artifact folder's disk fills up: the scan ends FAILED with `storage_full`, nothing
half-written is visible, the staging leftovers are gone, and the service keeps running. The disk is
a real, small tmpfs mounted for the test (root only, as CI runs)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.gitrepos import GitDaemon, make_repo
from tests.support.service import Service, base_env
from tests.support.ws import read_stream

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

DB = 11
DISK_BYTES = 256 * 1024


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path_factory.mktemp("small-disk")
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES},mode=0755", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture(scope="module")
def full_service(small_disk: Path, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("disk-full-service")
    db_url = redis_url.rsplit("/", 1)[0] + f"/{DB}"
    redis.Redis.from_url(db_url).flushdb()
    svc = Service(env=base_env(tmp, db_url, CERTUS_ASSURANCE_ARTIFACT_ROOT=str(small_disk / "artifacts")),
                  workdir=tmp)
    try:
        svc.start_api()
        svc.start_worker("disk", queues="scans", concurrency=1)
        svc.wait_workers(1)
        yield svc
    finally:
        svc.stop()
        redis.Redis.from_url(db_url).flushdb()


def _fill(disk: Path, leave: int) -> Path:
    """Fill the disk but ``leave`` bytes."""
    filler = disk / "filler"
    stat = os.statvfs(disk)
    free = stat.f_bavail * stat.f_frsize
    with filler.open("ab") as fh:
        fh.write(b"\0" * max(free - leave, 0))
    return filler


def test_a_full_artifact_disk_fails_the_scan_cleanly_and_the_service_recovers(full_service, small_disk,
                                                                              git_server: GitDaemon):
    make_repo(git_server.base, "disk-full", {"app.py": "import subprocess\nsubprocess.call('x', shell=True)\n"
                                             + "# padding\n" * 2000})
    url = git_server.url("disk-full")
    filler = _fill(small_disk, leave=8 * 1024)  # a few pages: the bundle's first files fit, not all
    resp = full_service.submit(git_url=url, profile="smoke")
    assert resp.status_code == 202, resp.text
    test_id = resp.json()["test_id"]
    record = full_service.wait_done(test_id, timeout=300)
    assert record["status"] == "FAILED"
    assert [e["code"] for e in record["errors"]][-1:] == ["storage_full"], record["errors"]
    assert record["artifacts"] in ({}, None)
    # Nothing half-written is visible: no bundle, and no staging leftovers.
    artifacts = small_disk / "artifacts"
    assert not (artifacts / test_id).exists()
    assert not list(artifacts.glob(f".staging/{test_id}*"))
    assert (artifacts / ".staging").exists()  # the attempt did write, and its leftovers were removed
    # The stream still ends, once, with the failure.
    stream = read_stream(full_service.ws_url(f"/v1/security-scans/{test_id}/stream"),
                         headers=full_service.ws_headers)
    completes = [e for e in stream.events if e["type"] == "scan_complete"]
    assert len(completes) == 1 and completes[0]["status"] == "FAILED"
    assert any(e["type"] == "error" and e["code"] == "storage_full" for e in stream.events)

    # Space again: the same worker scans as before.
    filler.unlink()
    resp = full_service.submit(git_url=url, profile="smoke")
    again = full_service.wait_done(resp.json()["test_id"], timeout=300)
    assert again["status"] == "SUCCEEDED", again["errors"]
    assert (artifacts / again["test_id"] / "reports" / "signing" / "attestation.intoto.json").is_file()
