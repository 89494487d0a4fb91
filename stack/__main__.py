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
from tasks.keys import KeyStore
from tasks.redis_client import connect
from tasks.settings import Settings


def ensure_admin_key(redis_url: str, key_file: Path) -> None:
    """On first start, create an admin key and keep it in a file only its owner can read."""
    store = KeyStore(connect(redis_url))
    if key_file.exists() and store.authenticate(key_file.read_text().strip()) is not None:
        print(f"admin API key: {key_file} (mode 0600)", flush=True)
        return
    plain, principal = store.create("admin", ["*"], name="created by make run")
    key_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(plain + "\n")
    os.chmod(key_file, 0o600)
    print(f"created admin API key {principal.key_id}; stored in {key_file} (mode 0600). Use it as\n"
          f"  curl -H \"Authorization: Bearer $(cat {key_file})\" http://.../v1/security-scans\n"
          f"and manage keys with: python -m app.keys create|list|revoke", flush=True)


def run(args: argparse.Namespace) -> int:
    var = processes.ROOT / "var"
    env: dict[str, str] = {}
    redis = None
    if not os.environ.get("CERTUS_ASSURANCE_REDIS_URL"):
        redis = RedisServer(var / "redis", port=args.redis_port).start()
        env["CERTUS_ASSURANCE_REDIS_URL"] = redis.url
        print(f"embedded Redis on {redis.url} (data in {var / 'redis'})", flush=True)
    redis_url = env.get("CERTUS_ASSURANCE_REDIS_URL") or os.environ["CERTUS_ASSURANCE_REDIS_URL"]
    ensure_admin_key(redis_url, Path(Settings.from_env().admin_key_file))
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
