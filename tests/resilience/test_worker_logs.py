"""A real worker's log, in JSON, when background threads print, warn and die: each uncaught
thread exception is one record carrying its traceback, each printed line one record, each warning
one record, in the main process and in pool processes alike; no record is a lone character (as
when Celery's redirected stderr logged every write of a traceback on its own)."""

from __future__ import annotations

import json
import time

import pytest

from stack import processes
from tests.support.service import base_env

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
PLACES = ("main process", "pool process")


def records(path) -> tuple[list[dict], list[str]]:
    parsed, other = [], []
    for line in path.read_text(errors="replace").splitlines():
        try:
            parsed.append(json.loads(line))
        except ValueError:
            other.append(line)
    return parsed, other


def test_thread_exceptions_prints_and_warnings_are_whole_records(tmp_path, redis_url):
    env = base_env(tmp_path, redis_url, CERTUS_ASSURANCE_LOG_FORMAT="json")
    log = tmp_path / "worker.log"
    argv = processes.worker_argv("noisy", concurrency=1, quiet=True) + ["--include", "tests.support.thread_noise"]
    proc = processes.spawn(argv, env, log)
    try:
        deadline = time.monotonic() + 120
        while True:
            found, _ = records(log)
            dead = [r for r in found if r.get("message", "").startswith("uncaught exception in thread noise-")]
            if len(dead) >= 2:
                break
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(0.3)
        time.sleep(1)
    finally:
        processes.stop(proc)
    found, other = records(log)
    for place in PLACES:
        dead = [r for r in found if r.get("message") == f"uncaught exception in thread noise-{place}"]
        assert len(dead) == 1, dead
        assert dead[0]["logger"] == "certus.uncaught" and dead[0]["level"] == "error"
        trace = dead[0]["exc"]
        assert trace.startswith("Traceback (most recent call last):")
        assert "thread_noise.py" in trace and "^^^^" in trace and trace.rstrip().endswith(
            "ZeroDivisionError: division by zero")
        printed = [r for r in found if r.get("message", "").startswith(f"printed by a thread in the {place}")]
        assert len(printed) == 1 and printed[0]["logger"] == "celery.redirected"
        warned = [r for r in found if f"a warning from a thread in the {place}" in r.get("message", "")]
        assert len(warned) == 1 and warned[0]["logger"] == "py.warnings"
    assert len([r for r in found if r.get("message") == "partial line, then the rest"]) == 2
    # Nothing printed came out a piece at a time.
    redirected = [r["message"] for r in found if r.get("logger") == "celery.redirected"]
    assert all(len(m.strip()) > 3 for m in redirected), redirected
    assert not any("Traceback" in m or "^" == m.strip() for m in redirected)
    assert not [line for line in other if 0 < len(line.strip()) <= 3], other
