"""A worker plugin of the tests that moves the findings store's clock: named in ``WORKER_PLUGINS``,
it makes the worker's clock (``workers.findings.CLOCK``) read the number of seconds to add to the
real time from the file ``FINDINGS_TEST_CLOCK_FILE`` names, at every reading. A test moves the
workers' time forward by writing that file (``move``); no file, or no variable: the real time."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from workers import findings

ENV = "FINDINGS_TEST_CLOCK_FILE"


def offset_seconds() -> float:
    name = os.environ.get(ENV)
    if not name:
        return 0.0
    try:
        return float(Path(name).read_text().strip() or 0)
    except (OSError, ValueError):
        return 0.0


def moved_now() -> datetime:
    return datetime.now(UTC) + timedelta(seconds=offset_seconds())


def move(clock_file: Path, by: timedelta) -> None:
    """Move the clock of the workers that read ``clock_file`` to the real time plus ``by``."""
    clock_file.write_text(f"{by.total_seconds()}\n")


findings.CLOCK = moved_now
