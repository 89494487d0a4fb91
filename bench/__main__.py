"""``python -m bench [--quick] [--only NAME,...] [--reps N]``: run the benchmarks, print a table of
each figure against its floor, and write the results to bench/results/<date>-<host>.json."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.stats import summarise

SUITES = ["submit", "events", "watchers", "scaleout", "scans", "findings"]
RESULTS = Path(__file__).parent / "results"


def _machine() -> dict[str, Any]:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    redis_v = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.strip()
    versions: dict[str, str | None] = {}
    for dist in ("celery", "redis", "hiredis", "flask", "flask-sock", "gunicorn", "gevent", "dulwich"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {"host": socket.gethostname(), "cpus": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "platform": platform.platform(), "redis_server": redis_v, "versions": versions,
            "loadavg_at_start": os.getloadavg()}


def _check(value: float, rule: tuple[str, float]) -> bool:
    op, limit = rule
    return value <= limit if op == "<=" else value >= limit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition: a smoke check")
    parser.add_argument("--only", default=",".join(SUITES))
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    reps = 1 if args.quick else args.reps
    out: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "quick": args.quick,
                           "machine": _machine(), "suites": {}}
    rows = []
    for name in args.only.split(","):
        module = importlib.import_module(f"bench.{name}")
        runs = []
        # findings repeats inside itself (and builds its million findings once)
        for _ in range(reps if name not in ("scans", "watchers", "scaleout", "findings") else 1):
            t0 = time.monotonic()
            runs.append(module.run(args.quick))
            print(f"  {name}: one repetition in {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
        figures: dict[str, Any] = {}
        for key, value in runs[0].items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                figures[key] = summarise([r[key] for r in runs])
            else:
                figures[key] = value
        out["suites"][name] = {"figures": figures, "runs": runs, "targets": module.TARGETS}
        for key, rule in module.TARGETS.items():
            median = figures[key]["median"] if isinstance(figures[key], dict) else figures[key]
            rows.append((name, key, median, f"{rule[0]} {rule[1]}", "yes" if _check(median, rule) else "NO"))
    print(f"\n{'suite':<10} {'figure':<24} {'median':>10}  {'target':<8} met")
    for suite, key, median, target, ok in rows:
        print(f"{suite:<10} {key:<24} {median:>10.3f}  {target:<8} {ok}")
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{stamp}-{socket.gethostname()}{'-quick' if args.quick else ''}.json"
    path.write_text(json.dumps(out, indent=2, default=str))
    print(f"\nwritten {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
