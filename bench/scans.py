"""Whole scans: a scan of a fixed real repository with the default profile, submit ->
``scan_complete`` at a WebSocket client, against the same tools run directly on the same checkout,
one after another and all at once. Also the cost of a scan: the worker's peak memory and the Redis
memory a retained scan takes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import flask
import psutil
import websocket
import werkzeug

from bench.harness import Stack, submit
from tasks import keyspace
from tasks.profiles import DEFAULT_PROFILE, builtin
from tasks.settings import Settings
from tests.support.gitrepos import GitDaemon, make_repo
from workers.sandbox import Confinement, Sandbox
from workers.scanners.base import ToolContext
from workers.scanners.registry import all_scanners
from workers.toolrun import scrubbed_env


def _real_repository(base: Path) -> Path:
    """Flask's and Werkzeug's own sources at the versions this project pins: real code, fixed."""
    files: dict[str, str] = {}
    for package in (flask, werkzeug):
        root = Path(str(package.__file__)).parent
        for path in root.rglob("*.py"):
            files[f"{package.__name__}/{path.relative_to(root)}"] = path.read_text()
    files["requirements.txt"] = "flask==2.0.0\nwerkzeug==2.0.0\njinja2==2.10\n"
    return make_repo(base, "repo", files)


FIXTURE_OSV = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "osv" / "PyPI-all.zip"


def _osv_database(folder: Path) -> Path:
    """The fixed OSV snapshot the tests use, so the default profile runs every one of its tools."""
    subprocess.run([sys.executable, "-m", "workers.osv", "--db", str(folder), "import", "PyPI", str(FIXTURE_OSV)],
                   check=True, stdout=subprocess.DEVNULL)
    return folder


def _direct(checkout: Path, tools: list[str], parallel: bool, osv_db: Path) -> float:
    scanners = all_scanners(Settings(osv_db_path=str(osv_db)))
    runnable = [scanners[t] for t in tools if t in scanners and scanners[t].unavailable_reason() is None]
    scratch = Path(tempfile.mkdtemp(prefix="certus-direct-"))
    home = scratch / "home"
    home.mkdir()

    def one(scanner: Any) -> None:
        out = scratch / scanner.id
        out.mkdir(exist_ok=True)
        ctx = ToolContext(source_dir=checkout, out_dir=out, config={}, home=home)
        subprocess.run(scanner.command(ctx), cwd=checkout, env=scrubbed_env(home=str(home)),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)

    t0 = time.perf_counter()
    if parallel:
        with ThreadPoolExecutor(max_workers=max(len(runnable), 1)) as pool:
            list(pool.map(one, runnable))
    else:
        for scanner in runnable:
            one(scanner)
    elapsed = time.perf_counter() - t0
    shutil.rmtree(scratch, ignore_errors=True)
    return elapsed


def _sandbox_start_ms(runs: int = 30) -> dict[str, float]:
    """What the sandbox adds to one tool start: ``/bin/true`` run bare and run sandboxed (the limits,
    bubblewrap's namespaces and mounts, and dropping to the tools' user), medians in milliseconds."""
    sandbox = Sandbox(Settings())
    sandbox.check()
    wrapped, env = sandbox.wrap(["/bin/true"], Confinement(), Path("/"))

    def median_ms(argv: list[str]) -> float:
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run(argv, env=env, check=True)
            times.append((time.perf_counter() - t0) * 1000)
        return sorted(times)[len(times) // 2]

    bare, confined = median_ms(["/bin/true"]), median_ms(wrapped)
    return {"bare_ms": bare, "sandboxed_ms": confined, "cost_ms": confined - bare}


def _watch(base: str, stream_url: str, stack: Stack) -> str:
    """Follow a scan's stream to its end; returns the final status."""
    ws = websocket.create_connection(f"ws://{base}{stream_url}", timeout=600, header=stack.ws_header)
    status = "unknown"
    while frame := ws.recv():
        event = json.loads(frame)
        if event["type"] == "scan_complete":
            status = event["status"]
    ws.close()
    return status


def _peak_rss(pid: int, stop: threading.Event, out: list[int]) -> None:
    peak = 0
    root = psutil.Process(pid)
    while not stop.is_set():
        try:
            procs = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.05)
    out.append(peak)


def run(quick: bool) -> dict[str, Any]:
    reps = 1 if quick else 5  # tool times drift by ±15 % here: the median of five
    profile = "smoke" if quick else DEFAULT_PROFILE
    base_profile = builtin(profile)
    assert base_profile is not None
    tools = list(base_profile.tools)
    service_s: list[float] = []
    seq_s: list[float] = []
    par_s: list[float] = []
    peaks: list[int] = []
    redis_bytes: list[int] = []
    stack = Stack(CERTUS_ASSURANCE_TOOL_PARALLELISM=str(max(len(tools), 1)))
    osv_db = _osv_database(stack.tmp / "osv")
    stack.extra_env["CERTUS_ASSURANCE_OSV_DB_PATH"] = str(osv_db)
    with stack:
        repo = _real_repository(stack.tmp / "git")
        daemon = GitDaemon(stack.tmp / "git").start()
        try:
            base = stack.api()
            worker = stack.worker("bench", concurrency=1, queues="scans")
            stack.wait_workers(1)
            session = stack.session()
            warm = submit(base, session, git_url=daemon.url("repo"), profile="smoke")  # warm-up, to its end
            _watch(base, warm["stream_url"], stack)
            # The timed scans run unobserved; memory is sampled on one more scan afterwards, since
            # walking the process tree 20 times a second takes CPU from the scanners.
            for rep in range(reps + 1):
                sampled = rep == reps
                stop = threading.Event()
                peak: list[int] = []
                sampler = threading.Thread(target=_peak_rss, args=(worker.pid, stop, peak))
                if sampled:
                    sampler.start()
                t0 = time.perf_counter()
                created = submit(base, session, git_url=daemon.url("repo"), profile=profile)
                status = _watch(base, created["stream_url"], stack)
                elapsed = time.perf_counter() - t0
                if status != "SUCCEEDED":
                    raise RuntimeError(f"the benchmark scan ended {status}")
                if sampled:
                    stop.set()
                    sampler.join()
                    peaks.append(peak[0])
                    break
                service_s.append(elapsed)
                client = stack.client
                test_id = created["test_id"]
                redis_bytes.append(int(client.memory_usage(keyspace.scan(test_id)) or 0)
                                   + int(client.memory_usage(keyspace.events(test_id)) or 0))
                seq_s.append(_direct(repo, tools, parallel=False, osv_db=osv_db))
                par_s.append(_direct(repo, tools, parallel=True, osv_db=osv_db))
        finally:
            daemon.stop()
    med = sorted(service_s)[len(service_s) // 2]
    seq = sorted(seq_s)[len(seq_s) // 2]
    par = sorted(par_s)[len(par_s) // 2]
    return {"profile": profile, "tools": tools, "service_runs_s": service_s, "sequential_runs_s": seq_s,
            "parallel_runs_s": par_s, "service_s": med, "direct_sequential_s": seq,
            "direct_parallel_s": par, "vs_parallel": med / par, "vs_sequential": med / seq,
            "worker_peak_rss_mb": max(peaks) / 2**20, "redis_bytes_per_scan": sorted(redis_bytes)[0],
            "sandbox_start": _sandbox_start_ms()}


# The service runs every tool sandboxed; the direct runs do not (the sandbox's whole cost is in the ratio).
TARGETS = {"vs_parallel": ("<=", 1.10), "vs_sequential": ("<=", 0.9)}
