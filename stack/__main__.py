"""``python -m stack run``: the service on this machine, stopped cleanly with Ctrl-C.

Starts an embedded Redis (data under var/redis) when CERTUS_ASSURANCE_REDIS_URL is unset. Every
process is supervised (``stack/supervisor.py``): one that exits is started again.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from stack import processes
from stack.adminkey import ensure_admin_key
from stack.launcher import Launcher
from stack.private_file import ensure_secret, read_private, write_private
from stack.redis_server import REDIS_PASSWORD_FILE, RedisServer, with_password
from stack.supervisor import CrashLoop, Policy, Supervisor
from tasks.settings import Settings


def _stop_on_sigterm() -> threading.Event:
    """SIGTERM to the launcher stops everything in order, as Ctrl-C does. SIGINT always means
    Ctrl-C, also when the launcher was started in the background by a shell that ignores it there
    (Python would otherwise keep ignoring it, and ``kill -INT`` would do nothing)."""
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return stopping


def _gave_up(exc: Exception) -> int:
    print(f"supervisor: {exc}. Stopping everything.", file=sys.stderr, flush=True)
    return 1


def _until_stopped(start: Callable[[], None], check: Callable[[], None], stop: Callable[[], None],
                   farewell: str) -> int:
    """Start, then check the processes twice a second until Ctrl-C or SIGTERM (0) or until the
    supervisor gives up (1); stop everything in order either way."""
    stopping = _stop_on_sigterm()
    try:
        start()
        while not stopping.is_set():
            check()
            time.sleep(0.5)
        return 0
    except KeyboardInterrupt:
        return 0
    except (CrashLoop, TimeoutError) as exc:
        return _gave_up(exc)
    finally:
        print(farewell, flush=True)
        stop()
        print("stopped", flush=True)


def run(args: argparse.Namespace) -> int:
    """The API, ``--workers`` workers and (without CERTUS_ASSURANCE_REDIS_URL) an embedded Redis,
    each restarted when it exits; Ctrl-C stops the API, then the workers, then Redis."""
    var = Path(args.folder).resolve()
    env: dict[str, str] = {}
    redis: RedisServer | None = None
    workers = [f"worker{i + 1}" for i in range(args.workers)]
    host, _, port = args.bind.rpartition(":")
    sup = Supervisor(Policy(limit=args.restart_limit, window=args.restart_window))
    launcher = Launcher(env, new_session=True, supervise=True, supervisor=sup)

    def write_state() -> None:
        # Which processes run, for tools and tests (no secret in it).
        pids = sup.pids()
        write_private(var / "run.json", json.dumps({
            "url": f"http://{args.bind}", "redis_url": redis.public_url if redis else None,
            "redis_pid": pids.pop("redis", None), "pids": pids}, indent=2))

    def start() -> None:
        nonlocal redis
        if not os.environ.get("CERTUS_ASSURANCE_REDIS_URL"):
            password = ensure_secret(var / REDIS_PASSWORD_FILE)
            redis = launcher.start_redis(var / "redis", port=args.redis_port, password=password)
            print(f"embedded Redis on {redis.public_url} (password in {var / REDIS_PASSWORD_FILE}, mode 0600; "
                  f"data in {var / 'redis'})", flush=True)
        redis_url = env.get("CERTUS_ASSURANCE_REDIS_URL") or os.environ["CERTUS_ASSURANCE_REDIS_URL"]
        ensure_admin_key(redis_url, Path(Settings.from_env().admin_key_file))
        launcher.start_api("api", args.bind, workers=args.api_workers)
        for name in workers:
            launcher.start_worker(name)
        sup.on_change = write_state
        write_state()
        launcher.wait_answers("api", host or "127.0.0.1", int(port), 120)
        print(f"Certus Assurance API on http://{args.bind}  (Ctrl-C stops everything)", flush=True)

    return _until_stopped(start, launcher.check, launcher.stop, "stopping")


def cluster(args: argparse.Namespace) -> int:
    from stack.cluster import Cluster

    folder = Path(args.folder).resolve()
    c = Cluster(folder, bind=args.bind, api_replicas=args.api, scan_workers=args.scan_workers,
                upload_workers=args.upload_workers, redis_url=os.environ.get("CERTUS_ASSURANCE_REDIS_URL"),
                policy=Policy(limit=args.restart_limit, window=args.restart_window))

    def start() -> None:
        c.start()
        print(f"Certus Assurance cluster on {c.url} (HAProxy) -> {c.api_ports}", flush=True)
        print(f"Redis {c.public_redis_url}; worker metrics {c.metrics_ports}; logs in {folder / 'logs'}", flush=True)
        print("Ctrl-C stops everything", flush=True)

    return _until_stopped(start, c.check, c.stop, "stopping the cluster")


def embedded_redis_url(args: argparse.Namespace) -> str | None:
    """The URL (with its password) of the Redis that ``make cluster`` (``--cluster FOLDER``) or
    ``make run`` embeds, or None when there is none."""
    if args.cluster:
        state = json.loads((Path(args.cluster) / "cluster.json").read_text())
        if not state.get("redis_password_file"):
            return None
        url, password_file = state["redis_url"], Path(state["redis_password_file"])
    else:
        url, password_file = f"redis://127.0.0.1:{args.redis_port}/0", processes.ROOT / "var" / REDIS_PASSWORD_FILE
    password = (read_private(password_file) or "").strip()
    return with_password(url, password) if password else None


def flower(args: argparse.Namespace) -> int:
    """Flower on the service's broker (``tasks.flower_app`` carries its TLS and Sentinel options).

    Without CERTUS_ASSURANCE_REDIS_URL it connects to the embedded Redis of ``make run`` (or of
    the cluster whose folder ``--cluster`` names), with that Redis's password.

    Flower reads its own variables: ``FLOWER_BASIC_AUTH=user:password`` to ask for a login. This
    process becomes Flower (exec), so Ctrl-C and SIGTERM reach it directly.
    """
    argv = [str(processes.BIN / "celery"), "-A", "tasks.flower_app", "flower", f"--address={args.address}",
            f"--port={args.port}"]
    env = dict(os.environ)
    embedded = embedded_redis_url(args)
    if embedded and not env.get("CERTUS_ASSURANCE_REDIS_URL"):
        env["CERTUS_ASSURANCE_REDIS_URL"] = embedded
    env["PYTHONPATH"] = str(processes.ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    os.chdir(processes.ROOT)
    os.execve(argv[0], argv, env)  # noqa: S606 - a fixed argv, no shell


def _restart_options(parser: argparse.ArgumentParser) -> None:
    defaults = Policy()
    parser.add_argument("--restart-limit", type=int, default=defaults.limit,
                        help="restarts of one process allowed within --restart-window before giving up")
    parser.add_argument("--restart-window", type=float, default=defaults.window, help="seconds")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run the API and a worker (and Redis if none is configured)")
    p.add_argument("--bind", default=os.environ.get("CERTUS_ASSURANCE_BIND", "127.0.0.1:8000"))
    p.add_argument("--api-workers", type=int, default=1)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--redis-port", type=int, default=6390)
    p.add_argument("--folder", default=str(processes.ROOT / "var"),
                   help="where the embedded Redis keeps its data and password")
    _restart_options(p)
    c = sub.add_parser("cluster", help="HAProxy, 2 API replicas, 2 scan workers, 1 upload worker, one Redis")
    c.add_argument("--bind", default=os.environ.get("CERTUS_ASSURANCE_CLUSTER_BIND", "127.0.0.1:8080"))
    c.add_argument("--folder", default=str(processes.ROOT / "var" / "cluster"))
    c.add_argument("--api", type=int, default=2)
    c.add_argument("--scan-workers", type=int, default=2)
    c.add_argument("--upload-workers", type=int, default=1)
    _restart_options(c)
    f = sub.add_parser("flower", help="Flower on the configured broker")
    f.add_argument("--address", default="127.0.0.1")
    f.add_argument("--port", type=int, default=5555)
    f.add_argument("--cluster", help="a `make cluster` folder: use its embedded Redis")
    f.add_argument("--redis-port", type=int, default=6390, help="the port of `make run`'s embedded Redis")
    args = parser.parse_args(argv)
    Path(processes.ROOT / "var").mkdir(exist_ok=True)
    if args.command == "cluster":
        return cluster(args)
    if args.command == "flower":
        return flower(args)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
