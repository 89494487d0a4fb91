"""Scale-out: scans per minute with 1, 2, 4 and 8 worker processes, each scan's one tool waiting
instead of computing, against linear scaling from one process."""

from __future__ import annotations

import time
from typing import Any

from bench.harness import Stack, submit
from tasks import keyspace
from tests.support.gitrepos import GitDaemon, make_repo


def _throughput(stack: Stack, base: str, url: str, scans: int) -> float:
    session = stack.session()
    client = stack.client
    t0 = time.perf_counter()
    ids = [submit(base, session, git_url=url, profile="smoke")["test_id"] for _ in range(scans)]
    pending = list(ids)
    while pending:
        # One round trip for all pending scans, ten times a second: the harness must not take
        # the CPU the workers are measured on (one call per scan every 50 ms did, at 8 workers).
        pipe = client.pipeline(transaction=False)
        pipe.smismember(keyspace.status_set("SUCCEEDED"), pending)
        pipe.smismember(keyspace.status_set("FAILED"), pending)
        succeeded, failed = pipe.execute()
        for test_id, bad in zip(pending, failed, strict=True):
            if bad:
                errors: Any = client.hget(keyspace.scan(test_id), "errors")
                raise RuntimeError(f"scan {test_id} failed: {errors}")
        pending = [test_id for test_id, done in zip(pending, succeeded, strict=True) if not done]
        time.sleep(0.1)
    return scans / (time.perf_counter() - t0) * 60


def run(quick: bool) -> dict[str, Any]:
    counts = [1, 2] if quick else [1, 2, 4, 8]
    sleep = "1" if quick else "3"
    # Enough scans per worker that the last round's uneven finish weighs little.
    per_worker = 2 if quick else 8
    results = {}
    with Stack(BENCH_SLEEP_SECONDS=sleep) as stack:
        make_repo(stack.tmp / "git", "repo", {"main.py": "print('hello')\n"})
        daemon = GitDaemon(stack.tmp / "git").start()
        try:
            base = stack.api()
            started = 0
            for n in counts:
                while started < n:
                    started += 1
                    stack.worker(f"bench{started}", app="bench.sleep_worker", concurrency=1, queues="scans")
                stack.wait_workers(n)
                results[n] = _throughput(stack, base, daemon.url("repo"), per_worker * n)
        finally:
            daemon.stop()
    top = max(counts)
    linear = results[1] * top
    return {"scans_per_min": {str(k): v for k, v in results.items()}, "workers_max": top,
            "linear_ratio_at_max": results[top] / linear, "sleep_s": float(sleep)}


TARGETS = {"linear_ratio_at_max": (">=", 0.9)}
