"""A scan's bundle: what earlier attempts left in staging is removed when the bundle is published."""

from __future__ import annotations

from pathlib import Path

from workers.bundle import Bundle


def test_publishing_removes_the_staging_of_earlier_attempts_and_nothing_else(tmp_path: Path):
    killed = Bundle(str(tmp_path), "test_0123456789ab", "attempt1")
    killed.write_json("scan.json", {"status": "RUNNING"})  # killed mid-write: never published
    other_scan = Bundle(str(tmp_path), "test_ba9876543210", "attempt1")
    other_scan.write_json("scan.json", {"status": "RUNNING"})
    current = Bundle(str(tmp_path), "test_0123456789ab", "attempt2")
    current.write_json("scan.json", {"status": "SUCCEEDED"})
    final = current.publish()
    assert (final / "scan.json").read_text().strip().endswith("}")
    assert sorted(p.name for p in (tmp_path / ".staging").iterdir()) == ["test_ba9876543210.attempt1"]
    assert other_scan.files() == ["scan.json"]
