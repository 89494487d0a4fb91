"""The production topology on one machine: HAProxy in front of API replicas, scan and upload
worker pools, one Redis (embedded when none is configured). ``make cluster`` runs it.

Every process gets its own log file and its own Prometheus multiprocess folder under the cluster's
folder, and each worker serves its own ``/metrics``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from stack import processes
from stack.adminkey import ensure_admin_key
from stack.ports import free_port, wait_port
from stack.private_file import ensure_secret, write_private
from stack.redis_server import REDIS_PASSWORD_FILE, RedisServer, without_password

# Long-lived WebSocket streams: the tunnel timeout, not the client/server timeouts, applies once a
# connection is upgraded. The API pings every 25 s, so a live stream is never idle that long.
HAPROXY_CFG = """\
global
    maxconn 4096
    log stdout format raw local0 info

defaults
    mode http
    log global
    option httplog
    option dontlognull
    option forwardfor
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 15s
    timeout http-keep-alive 15s
    timeout queue 30s
    timeout check 10s
    timeout tunnel 1h
    timeout client-fin 30s
    timeout server-fin 30s

frontend api
    bind {bind}
    http-request set-header X-Request-ID %[unique-id] unless {{ req.hdr(X-Request-ID) -m found }}
    unique-id-format %{{+X}}o%ci%cp%fp%Ts%rt%pid
    default_backend api_replicas

backend api_replicas
    balance roundrobin
    option httpchk GET /ready
    http-check expect status 200
    # Which replica served a response, including a WebSocket's 101 Switching Protocols.
    http-response set-header X-Certus-Backend %[srv_name]
{route_rules}
{servers}
"""

# For tests and debugging only: pin a request to a named replica with `X-Certus-Route: api2`.
ROUTE_RULE = "    use-server {name} if {{ req.hdr(X-Certus-Route) -m str {name} }}"
# Lenient checks: on a busy development machine a slow /ready must not take a replica out.
SERVER_LINE = "    server {name} 127.0.0.1:{port} check inter 2s fall 5 rise 1 maxconn 2000"


def haproxy_executable() -> str:
    found = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if Path(p).exists()), None)
    if not found:
        raise RuntimeError("haproxy is not installed: run scripts/system-deps.sh (Debian package `haproxy`)")
    return found


def haproxy_config(bind: str, replicas: dict[str, int], *, allow_routing: bool = True) -> str:
    return HAPROXY_CFG.format(
        bind=bind,
        route_rules="\n".join(ROUTE_RULE.format(name=n) for n in replicas) if allow_routing else "",
        servers="\n".join(SERVER_LINE.format(name=n, port=p) for n, p in replicas.items()),
    )


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
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    api_ports: dict[str, int] = field(default_factory=dict)
    metrics_ports: dict[str, int] = field(default_factory=dict)
    redis: RedisServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.bind}"

    def _metrics_dir(self, name: str) -> str:
        path = self.folder / "metrics" / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return str(path)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.procs[name] = processes.spawn(argv, {**self.env, **env}, self.folder / "logs" / f"{name}.log",
                                           new_session=True)

    def start(self) -> Cluster:
        (self.folder / "logs").mkdir(parents=True, exist_ok=True)
        if not self.redis_url:
            password = ensure_secret(self.folder / REDIS_PASSWORD_FILE)
            self.redis = RedisServer(self.folder / "redis", new_session=True, password=password).start()
            self.redis_url = self.redis.url
        self.env["CERTUS_ASSURANCE_REDIS_URL"] = self.redis_url
        self.admin_key_file = Path(self.env.get("CERTUS_ASSURANCE_ADMIN_KEY_FILE") or self.folder / "admin-key")
        ensure_admin_key(self.redis_url, self.admin_key_file)
        for i in range(1, self.api_replicas + 1):
            name, port = f"api{i}", free_port()
            self.api_ports[name] = port
            self._spawn(name, processes.api_argv(f"127.0.0.1:{port}", workers=1),
                        {"CERTUS_ASSURANCE_REPLICA_ID": name, "PROMETHEUS_MULTIPROC_DIR": self._metrics_dir(name)})
        pools = [("scans", i) for i in range(1, self.scan_workers + 1)]
        pools += [("uploads", i) for i in range(1, self.upload_workers + 1)]
        for queue, i in pools:
            name = f"{queue}{i}"
            port = free_port()
            self.metrics_ports[name] = port
            concurrency = self.scan_concurrency if queue == "scans" else 1
            log_format = self.env.get("CERTUS_ASSURANCE_LOG_FORMAT", os.environ.get("CERTUS_ASSURANCE_LOG_FORMAT"))
            json_logs = log_format == "json"
            self._spawn(name, processes.worker_argv(name, queue, concurrency, quiet=json_logs),
                        {"CERTUS_ASSURANCE_WORKER_METRICS_PORT": str(port),
                         "PROMETHEUS_MULTIPROC_DIR": self._metrics_dir(name)})
        for port in self.api_ports.values():
            wait_port("127.0.0.1", port, 120)
        cfg = self.folder / "haproxy.cfg"
        cfg.write_text(haproxy_config(self.bind, self.api_ports))
        subprocess.run([haproxy_executable(), "-c", "-q", "-f", str(cfg)], check=True)
        self.procs["haproxy"] = subprocess.Popen(
            [haproxy_executable(), "-db", "-f", str(cfg)],
            stdout=open(self.folder / "logs" / "haproxy.log", "ab"),  # noqa: SIM115 - the child's log
            stderr=subprocess.STDOUT, start_new_session=True)
        host, _, lb_port = self.bind.rpartition(":")
        wait_port(host or "127.0.0.1", int(lb_port), 30)
        self.write_state()
        return self

    def write_state(self) -> None:
        """``cluster.json``: where everything listens and which processes run, for tools and tests.

        It holds no secret: the Redis URL is written without its password, and the embedded
        Redis's password file is named instead."""
        state = {"url": self.url, "redis_url": without_password(self.redis_url or ""),
                 "redis_password_file": str(self.folder / REDIS_PASSWORD_FILE) if self.redis else None,
                 "api": self.api_ports,
                 "admin_key_file": str(self.admin_key_file),
                 "worker_metrics": self.metrics_ports,
                 "pids": {name: proc.pid for name, proc in self.procs.items()},
                 "redis_pid": self.redis.proc.pid if self.redis and self.redis.proc else None}
        write_private(self.folder / "cluster.json", json.dumps(state, indent=2))

    def exited(self) -> list[str]:
        return [name for name, proc in self.procs.items() if proc.poll() is not None]

    def stop_process(self, name: str, timeout: float = 60) -> int | None:
        proc = self.procs.pop(name)
        processes.stop(proc, timeout=timeout)
        return proc.returncode

    def stop(self) -> None:
        # The load balancer first (no new work), then the APIs, then the workers (warm shutdown:
        # each finishes the scans it runs), then Redis.
        order = ["haproxy", *[n for n in self.procs if n.startswith("api")],
                 *[n for n in self.procs if n not in ("haproxy",) and not n.startswith("api")]]
        for name in order:
            if name in self.procs:
                self.stop_process(name, timeout=120 if not name.startswith(("api", "haproxy")) else 30)
        if self.redis:
            self.redis.stop()
