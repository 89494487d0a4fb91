"""Running one tool: its exit, its deadline and its cancellation, each of which must end the tool
and everything it started."""

from __future__ import annotations

import os
import time
from pathlib import Path

from workers import toolrun

# A tool that starts a helper of its own and waits for it, printing the helper's pid first.
WAITS_ON_A_CHILD = ["sh", "-c", "sleep 60 & echo $!; wait"]


def _gone(pid: int) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_an_exit_is_reported_with_its_code_and_output(tmp_path: Path):
    lines: list[tuple[str, str]] = []
    result = toolrun.run(["sh", "-c", "echo out; echo err >&2; exit 3"], cwd=str(tmp_path), timeout=30,
                         on_line=lambda stream, line: lines.append((stream, line)))
    assert result.exit_code == 3 and not result.timed_out and not result.cancelled
    assert sorted(lines) == [("stderr", "err"), ("stdout", "out")]


def test_a_tool_past_its_deadline_is_killed_with_what_it_started(tmp_path: Path):
    result = toolrun.run(WAITS_ON_A_CHILD, cwd=str(tmp_path), timeout=1)
    assert result.timed_out and not result.cancelled and result.exit_code is not None and result.exit_code < 0
    assert _gone(int(result.stdout_tail.split()[0]))  # the helper went with it


def test_a_stop_request_cancels_the_tool_and_what_it_started(tmp_path: Path):
    asked: list[float] = []

    def stop() -> bool:
        asked.append(time.monotonic())
        return len(asked) >= 3  # asked about every 0.2 s while the tool runs

    result = toolrun.run(WAITS_ON_A_CHILD, cwd=str(tmp_path), timeout=60, should_stop=stop)
    assert result.cancelled and not result.timed_out and len(asked) == 3
    assert _gone(int(result.stdout_tail.split()[0]))
