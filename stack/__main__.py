"""``python -m stack run``: the service on this machine, stopped cleanly with Ctrl-C.

Starts an embedded Redis (data under var/redis) when CERTUS_ASSURANCE_REDIS_URL is unset.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from stack import processes
from stack.ports import wait_port
from stack.redis_server import RedisServer


def run(args: argparse.Namespace) -> int:
    var = processes.ROOT / "var"
    env: dict[str, str] = {}
    redis = None
    if not os.environ.get("CERTUS_ASSURANCE_REDIS_URL"):
        redis = RedisServer(var / "redis", port=args.redis_port).start()
        env["CERTUS_ASSURANCE_REDIS_URL"] = redis.url
        print(f"embedded Redis on {redis.url} (data in {var / 'redis'})", flush=True)
    host, _, port = args.bind.rpartition(":")
    children = []
    try:
        children.append(processes.spawn(processes.api_argv(args.bind, workers=args.api_workers), env))
        for i in range(args.workers):
            children.append(processes.spawn(processes.worker_argv(f"worker{i + 1}"), env))
        wait_port(host or "127.0.0.1", int(port), 60)
        print(f"Certus Assurance API on http://{args.bind}  (Ctrl-C stops everything)", flush=True)
        stopping = False

        def _stop(*_: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, _stop)
        while not stopping:
            if any(c.poll() is not None for c in children):
                print("a service process exited; stopping", file=sys.stderr)
                return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            processes.stop(child)
        if redis:
            redis.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run the API and a worker (and Redis if none is configured)")
    p.add_argument("--bind", default=os.environ.get("CERTUS_ASSURANCE_BIND", "127.0.0.1:8000"))
    p.add_argument("--api-workers", type=int, default=1)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--redis-port", type=int, default=6390)
    args = parser.parse_args(argv)
    Path(processes.ROOT / "var").mkdir(exist_ok=True)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
