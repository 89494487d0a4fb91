"""Many watchers: N tailing WebSocket clients on one API process, its memory, and the latency of
one event fanned out to all of them."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import psutil
import websockets

from bench.events import _complete, _new_scan
from bench.harness import Stack
from bench.stats import percentile


async def _watch(url: str, ready: asyncio.Event, counter: list[int], n: int, lat: list[float],
                 marks: int, headers: dict[str, str]) -> None:
    async with websockets.connect(url, max_size=None, open_timeout=120, ping_interval=None,
                                  additional_headers=headers) as ws:
        counter[0] += 1
        if counter[0] == n:
            ready.set()
        seen = 0
        async for frame in ws:
            event = json.loads(frame)
            if event["type"] == "log":
                lat.append((time.time() - event["timestamp"]) * 1000)
                seen += 1
            if event["type"] == "scan_complete" or seen >= marks:
                return


async def _round(stack: Stack, base: str, n: int, marks: int) -> dict[str, Any]:
    test_id, store, events = _new_scan(stack)
    url = f"ws://{base}/v1/security-scans/{test_id}/stream"
    ready = asyncio.Event()
    counter = [0]
    lat: list[float] = []
    rss_before = psutil.Process(stack.api_pid()).memory_info().rss
    tasks = []
    for _ in range(n):
        tasks.append(asyncio.create_task(_watch(url, ready, counter, n, lat, marks, stack.headers)))
        await asyncio.sleep(0.002)  # connect at a steady pace, not all in one burst
    await asyncio.wait_for(ready.wait(), timeout=300)
    await asyncio.sleep(2)  # every handler is now blocked in its stream read
    rss = psutil.Process(stack.api_pid()).memory_info().rss
    for i in range(marks):
        events.append(test_id, "log", tool="bench", stream="stdout", line=f"mark {i}")
        await asyncio.sleep(0.5)
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=300)
    _complete(store, events, test_id)
    return {"clients": n, "held": counter[0], "rss_mb": rss / 2**20,
            "rss_per_conn_kb": (rss - rss_before) / n / 1024,
            "fanout_p50_ms": percentile(lat, 50), "fanout_p99_ms": percentile(lat, 99)}


def run(quick: bool, worker_class: str = "gevent") -> dict[str, Any]:
    sizes = [100] if quick else [100, 500, 1000, 1500]
    results = []
    with Stack() as stack:
        base = stack.api(worker_class)
        for n in sizes:
            results.append(asyncio.run(_round(stack, base, n, marks=3 if quick else 5)))
    top = results[-1]
    return {"worker_class": worker_class, "rounds": results, "max_held": top["held"],
            "fanout_p99_ms_at_max": top["fanout_p99_ms"]}


TARGETS = {"max_held": (">=", 1000)}
