"""Scan records for tests that hand one to a worker part directly."""

from __future__ import annotations

from typing import Any

from tasks.ids import new_test_id
from tasks.records import ScanRecord


def scan_record(**fields: Any) -> ScanRecord:
    """A record with the required fields filled in; ``fields`` name any others (None values kept)."""
    values: dict[str, Any] = {"test_id": new_test_id(), "workspace_id": "ws", "component_id": "c",
                              "assessment_id": "a", "profile": "light"}
    values.update(fields)
    if values["workspace_id"] is None:
        values["workspace_id"] = ""
    return ScanRecord(**values)
