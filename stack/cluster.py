"""The production topology on one machine: HAProxy in front of API replicas, scan and upload
worker pools, one Redis (embedded when none is configured). ``make cluster`` runs it.

Every process gets its own log file and its own Prometheus multiprocess folder under the cluster's
folder, and each worker serves its own ``/metrics``. Every process, Redis and HAProxy included, is
supervised (``stack/supervisor.py``): one that exits is started again with the same port, name and
settings.
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
from stack.ports import answers, free_port
from stack.private_file import ensure_secret, write_private
from stack.redis_server import REDIS_PASSWORD_FILE, RedisServer, without_password
from stack.supervisor import Policy, Supervisor

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
    # A replica that is down (restarting) refuses the connection: try another one.
    retries 3
    option redispatch 1
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
    policy: Policy = field(default_factory=Policy)
    supervisor: Supervisor | None = None
    api_ports: dict[str, int] = field(default_factory=dict)
    metrics_ports: dict[str, int] = field(default_factory=dict)
    redis: RedisServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.bind}"

    @property
    def public_redis_url(self) -> str:
        return without_password(self.redis_url or "")

    def _metrics_dir(self, name: str) -> str:
        # Emptied at each start: a restarted process starts its counters afresh, as any process does.
        path = self.folder / "metrics" / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return str(path)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        env = {**self.env, **env, "PROMETHEUS_MULTIPROC_DIR": self._metrics_dir(name)}
        return processes.spawn(argv, env, self.folder / "logs" / f"{name}.log", new_session=True)

    def _supervise(self, name: str, argv: list[str], env: dict[str, str], stop_timeout: float) -> None:
        assert self.supervisor is not None
        self.supervisor.add(name, lambda: self._spawn(name, argv, env),
                            lambda proc: processes.stop(proc, timeout=stop_timeout))

    def start(self) -> Cluster:
        """Start everything, each process supervised; ``check()`` then keeps them running."""
        (self.folder / "logs").mkdir(parents=True, exist_ok=True)
        sup = self.supervisor = Supervisor(self.policy)
        if not self.redis_url:
            password = ensure_secret(self.folder / REDIS_PASSWORD_FILE)
            redis = self.redis = RedisServer(self.folder / "redis", new_session=True, password=password)

            def start_redis() -> subprocess.Popen[bytes]:
                proc = redis.start().proc
                assert proc is not None
                return proc

            sup.add("redis", start_redis, lambda _proc: redis.stop())
            self.redis_url = redis.url
        self.env["CERTUS_ASSURANCE_REDIS_URL"] = self.redis_url
        self.admin_key_file = Path(self.env.get("CERTUS_ASSURANCE_ADMIN_KEY_FILE") or self.folder / "admin-key")
        ensure_admin_key(self.redis_url, self.admin_key_file)
        for i in range(1, self.api_replicas + 1):
            name, port = f"api{i}", free_port()
            self.api_ports[name] = port
            self._supervise(name, processes.api_argv(f"127.0.0.1:{port}", workers=1),
                            {"CERTUS_ASSURANCE_REPLICA_ID": name}, 30)
        pools = [("scans", i) for i in range(1, self.scan_workers + 1)]
        pools += [("uploads", i) for i in range(1, self.upload_workers + 1)]
        for queue, i in pools:
            name = f"{queue}{i}"
            port = free_port()
            self.metrics_ports[name] = port
            concurrency = self.scan_concurrency if queue == "scans" else 1
            log_format = self.env.get("CERTUS_ASSURANCE_LOG_FORMAT", os.environ.get("CERTUS_ASSURANCE_LOG_FORMAT"))
            json_logs = log_format == "json"
            # Warm shutdown: a worker finishes its scans before it exits.
            self._supervise(name, processes.worker_argv(name, queue, concurrency, quiet=json_logs),
                            {"CERTUS_ASSURANCE_WORKER_METRICS_PORT": str(port)}, 120)
        for name, port in self.api_ports.items():
            sup.wait_until(lambda port=port: answers("127.0.0.1", port), 120,  # type: ignore[misc]
                           f"{name} does not answer on 127.0.0.1:{port}")
        cfg = self.folder / "haproxy.cfg"
        cfg.write_text(haproxy_config(self.bind, self.api_ports))
        subprocess.run([haproxy_executable(), "-c", "-q", "-f", str(cfg)], check=True)
        sup.add("haproxy", lambda: subprocess.Popen(
            [haproxy_executable(), "-db", "-f", str(cfg)],
            stdout=open(self.folder / "logs" / "haproxy.log", "ab"),  # noqa: SIM115 - the child's log
            stderr=subprocess.STDOUT, start_new_session=True), lambda proc: processes.stop(proc, timeout=30))
        host, _, lb_port = self.bind.rpartition(":")
        sup.wait_until(lambda: answers(host or "127.0.0.1", int(lb_port)), 30,
                       f"HAProxy does not answer on {self.bind}")
        sup.on_change = self.write_state
        self.write_state()
        return self

    def write_state(self) -> None:
        """``cluster.json``: where everything listens and which processes run, for tools and tests.

        It holds no secret: the Redis URL is written without its password, and the embedded
        Redis's password file is named instead. It is written again after each restart."""
        pids = self.supervisor.pids() if self.supervisor else {}
        state = {"url": self.url, "redis_url": self.public_redis_url,
                 "redis_password_file": str(self.folder / REDIS_PASSWORD_FILE) if self.redis else None,
                 "api": self.api_ports,
                 "admin_key_file": str(self.admin_key_file),
                 "worker_metrics": self.metrics_ports,
                 "redis_pid": pids.pop("redis", None),
                 "pids": pids}
        write_private(self.folder / "cluster.json", json.dumps(state, indent=2))

    def check(self) -> None:
        """Restart what exited (raises CrashLoop when a process keeps exiting)."""
        if self.supervisor is not None:
            self.supervisor.check()

    def stop(self) -> None:
        # The load balancer first (no new work), then the APIs, then the workers (warm shutdown:
        # each finishes the scans it runs), then Redis.
        if self.supervisor is None:
            return
        names = list(self.supervisor.children)
        order = ["haproxy", *[n for n in names if n.startswith("api")],
                 *[n for n in names if n.startswith(("scans", "uploads"))], "redis"]
        self.supervisor.stop([n for n in order if n in self.supervisor.children])
