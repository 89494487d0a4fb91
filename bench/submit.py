"""Submit: POST /v1/security-scans through the real API server vs bare Celery ``send_task`` of the
same message on the same Redis. Latency p50/p99 (one client, keep-alive) and sustained rate
(several concurrent clients) for each. For context, not a target: the latency of the same API
process answering ``GET /health`` (the HTTP hop and Flask, with no work and no Redis)."""

from __future__ import annotations

import http.client
import json
import threading
import time
from typing import Any

from bench.harness import Stack
from bench.stats import percentile
from tasks import names
from tasks.celery_app import create_celery
from tasks.ids import new_test_id
from tasks.settings import Settings

PAYLOAD = {"workspace_id": "bench", "component_id": "c", "assessment_id": "a",
           "git_url": "git://127.0.0.1:9/none", "profile": "smoke"}


def _latencies(call: Any, n: int) -> list[float]:
    for _ in range(min(50, n)):
        call()  # warm-up: connections, imports, caches
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _rate(make_call: Any, clients: int, seconds: float) -> float:
    stop = time.monotonic() + seconds
    counts = [0] * clients

    def loop(i: int) -> None:
        call = make_call()
        while time.monotonic() < stop:
            call()
            counts[i] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - t0)


def run(quick: bool) -> dict[str, Any]:
    n = 200 if quick else 2000
    seconds = 2.0 if quick else 8.0
    clients = 8
    with Stack() as stack:
        base = stack.api()
        settings = Settings(redis_url=stack.env["CERTUS_ASSURANCE_REDIS_URL"])
        celery = create_celery(settings)

        def bare_call() -> None:
            tid = new_test_id()
            celery.send_task(names.SCAN_RUN, args=[tid], task_id=tid, queue=names.SCANS_QUEUE)

        body = json.dumps(PAYLOAD).encode()  # bytes: headers and body leave in one write
        headers = {**stack.headers, "Content-Type": "application/json"}
        host, port = base.rsplit(":", 1)

        def make_call(method: str = "POST", path: str = "/v1/security-scans", expect: int = 202) -> Any:
            # One keep-alive connection per client, with the standard library's HTTP client:
            # `requests` spends more time per call than the whole submit takes in the server.
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            payload = body if method == "POST" else None

            def call() -> None:
                conn.request(method, path, payload, headers)
                resp = conn.getresponse()
                text = resp.read()
                if resp.status != expect:
                    raise RuntimeError(f"{path} answered {resp.status}: {text[:200]!r}")
            return call

        bare = _latencies(bare_call, n)
        api = _latencies(make_call(), n)
        empty = _latencies(make_call("GET", "/health", 200), n)
        stack.client.delete(names.SCANS_QUEUE)
        bare_rate = _rate(lambda: bare_call, clients, seconds)
        api_rate = _rate(make_call, clients, seconds)
        stack.client.delete(names.SCANS_QUEUE)
    return {
        "api_p50_ms": percentile(api, 50), "api_p99_ms": percentile(api, 99),
        "bare_p50_ms": percentile(bare, 50), "bare_p99_ms": percentile(bare, 99),
        "empty_p50_ms": percentile(empty, 50), "empty_p99_ms": percentile(empty, 99),
        "api_rate_per_s": api_rate, "bare_rate_per_s": bare_rate,
        "p99_ratio": percentile(api, 99) / percentile(bare, 99),
        "rate_ratio": api_rate / bare_rate,
    }


TARGETS = {"p99_ratio": ("<=", 2.0), "rate_ratio": (">=", 0.40)}
