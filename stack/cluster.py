"""The production topology on one machine: HAProxy in front of API replicas, scan and upload
worker pools, one Redis and one PostgreSQL for the findings store (each embedded when none is
configured). ``make cluster`` runs it.

Every process gets its own log file and its own Prometheus multiprocess folder under the cluster's
folder, and each worker serves its own ``/metrics``. Every process, Redis and HAProxy included, is
supervised (``stack/supervisor.py``): one that exits is started again with the same port, name and
settings. The processes are started by ``stack/launcher.py``; HAProxy's configuration comes from
``stack/haproxy_cfg.py``, the template of compose/haproxy.cfg too.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from stack import processes
from stack.adminkey import ensure_admin_key
from stack.haproxy_cfg import haproxy_executable, render_cluster
from stack.launcher import Launcher
from stack.ports import free_port
from stack.postgres_server import POSTGRES_PASSWORD_FILE, PostgresServer
from stack.private_file import ensure_secret, write_private
from stack.redis_server import REDIS_PASSWORD_FILE, RedisServer, without_password
from stack.supervisor import Policy, Supervisor


@dataclass
class Cluster:
    folder: Path
    bind: str = "127.0.0.1:8080"
    api_replicas: int = 2
    scan_workers: int = 2
    upload_workers: int = 1
    scan_concurrency: int = 2
    env: dict[str, str] = field(default_factory=dict)
    redis_url: str | None = None
    admin_key_file: Path | None = None
    policy: Policy = field(default_factory=Policy)
    supervisor: Supervisor | None = None
    launcher: Launcher | None = None
    api_ports: dict[str, int] = field(default_factory=dict)
    metrics_ports: dict[str, int] = field(default_factory=dict)
    redis: RedisServer | None = None
    postgres: PostgresServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.bind}"

    @property
    def public_redis_url(self) -> str:
        return without_password(self.redis_url or "")

    def start(self) -> Cluster:
        """Start everything, each process supervised; ``check()`` then keeps them running."""
        logs = self.folder / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.supervisor = Supervisor(self.policy)
        # Every process gets a fresh Prometheus multiprocess folder at each start: a restarted
        # process starts its counters afresh, as any process does.
        launcher = self.launcher = Launcher(self.env, logs=logs, metrics=self.folder / "metrics", new_session=True,
                                            supervise=True, supervisor=self.supervisor)
        if not self.redis_url:
            password = ensure_secret(self.folder / REDIS_PASSWORD_FILE)
            self.redis = launcher.start_redis(self.folder / "redis", password=password)
            self.redis_url = self.redis.url
        self.env["CERTUS_ASSURANCE_REDIS_URL"] = self.redis_url
        if not (self.env.get("CERTUS_ASSURANCE_DATABASE_URL") or os.environ.get("CERTUS_ASSURANCE_DATABASE_URL")):
            # The findings store on a PostgreSQL of the cluster's own, as production runs it.
            self.postgres = launcher.start_postgres(self.folder / "postgres",
                                                    password=ensure_secret(self.folder / POSTGRES_PASSWORD_FILE))
        self.admin_key_file = Path(self.env.get("CERTUS_ASSURANCE_ADMIN_KEY_FILE") or self.folder / "admin-key")
        ensure_admin_key(self.redis_url, self.admin_key_file)
        for i in range(1, self.api_replicas + 1):
            name, port = f"api{i}", free_port()
            self.api_ports[name] = port
            launcher.start_api(name, f"127.0.0.1:{port}", env={"CERTUS_ASSURANCE_REPLICA_ID": name})
        log_format = self.env.get("CERTUS_ASSURANCE_LOG_FORMAT", os.environ.get("CERTUS_ASSURANCE_LOG_FORMAT"))
        pools = [("scans", i) for i in range(1, self.scan_workers + 1)]
        pools += [("uploads", i) for i in range(1, self.upload_workers + 1)]
        for queue, i in pools:
            name, port = f"{queue}{i}", free_port()
            self.metrics_ports[name] = port
            # Warm shutdown: a worker finishes its scans before it exits.
            launcher.start_worker(name, queue, self.scan_concurrency if queue == "scans" else 1,
                                  quiet=log_format == "json", stop_timeout=120,
                                  env={"CERTUS_ASSURANCE_WORKER_METRICS_PORT": str(port)})
        for name, port in self.api_ports.items():
            launcher.wait_answers(name, "127.0.0.1", port, 120)
        cfg = self.folder / "haproxy.cfg"
        cfg.write_text(render_cluster(self.bind, self.api_ports))
        haproxy = haproxy_executable()
        subprocess.run([haproxy, "-c", "-q", "-f", str(cfg)], check=True)
        launcher.add("haproxy", "balancer",
                     lambda: processes.spawn([haproxy, "-db", "-f", str(cfg)], {}, logs / "haproxy.log",
                                             new_session=True),
                     lambda proc: processes.stop(proc, timeout=30))
        host, _, lb_port = self.bind.rpartition(":")
        launcher.wait_answers("haproxy", host or "127.0.0.1", int(lb_port), 30)
        self.supervisor.on_change = self.write_state
        self.write_state()
        return self

    def write_state(self) -> None:
        """``cluster.json``: where everything listens and which processes run, for tools and tests.

        It holds no secret: the Redis URL is written without its password, and the embedded
        Redis's password file is named instead. It is written again after each restart."""
        pids = self.supervisor.pids() if self.supervisor else {}
        state = {"url": self.url, "redis_url": self.public_redis_url,
                 "redis_password_file": str(self.folder / REDIS_PASSWORD_FILE) if self.redis else None,
                 "database": (f"postgresql://postgres@127.0.0.1:{self.postgres.port}/postgres"
                              if self.postgres else None),
                 "database_password_file": str(self.folder / POSTGRES_PASSWORD_FILE) if self.postgres else None,
                 "api": self.api_ports,
                 "admin_key_file": str(self.admin_key_file),
                 "worker_metrics": self.metrics_ports,
                 "redis_pid": pids.pop("redis", None),
                 "pids": pids}
        write_private(self.folder / "cluster.json", json.dumps(state, indent=2))

    def check(self) -> None:
        """Restart what exited (raises CrashLoop when a process keeps exiting)."""
        if self.launcher is not None:
            self.launcher.check()

    def stop(self) -> None:
        # The load balancer first (no new work), then the APIs, then the workers (warm shutdown:
        # each finishes the scans it runs), then Redis.
        if self.launcher is not None:
            self.launcher.stop()
