"""The HAProxy configuration in front of the API replicas: one template, rendered for ``make
cluster`` (replicas on loopback ports, written at each start) and for compose (replicas found
through Docker's DNS), so the two cannot drift. A test compares compose/haproxy.cfg with
``render_compose()``; regenerate it with ``python -m stack.haproxy_cfg --compose > compose/haproxy.cfg``.

Both balance by least connections (a WebSocket stream holds its connection as long as its scan
runs, so counting requests would pile streams on one replica) and answer ``/metrics`` with 404:
Prometheus scrapes each replica on the internal network, clients never get metrics through the
load balancer.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from string import Template

TEMPLATE = Template("""\
$header
global
    maxconn $maxconn
    log stdout format raw local0 info
$resolvers
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
    # Once a connection is upgraded to a WebSocket the tunnel timeout applies: a scan stream may
    # last as long as the scan. The API pings every 25 s, so only dead peers reach this limit.
    timeout tunnel 1h
    timeout client-fin 30s
    timeout server-fin 30s

frontend api
    bind $bind
    # Uploads of archives are limited by the API; keep a ceiling here too.
    http-request deny deny_status 413 if { req.hdr_val(content-length) gt 536870912 }
    unique-id-format %{+X}o%ci%cp%fp%Ts%rt%pid
    http-request set-header X-Request-ID %[unique-id] unless { req.hdr(X-Request-ID) -m found }
    # /metrics is for Prometheus on the internal network, not for clients.
    http-request deny deny_status 404 if { path /metrics }
    default_backend api_replicas
$health
backend api_replicas
    balance leastconn
    option httpchk GET /ready
    http-check expect status 200
    # Which replica served a response, including a WebSocket's 101 Switching Protocols.
    http-response set-header X-Certus-Backend %[srv_name]
$servers
""")

COMPOSE_HEADER = """\
# HAProxy in front of the API replicas (compose). Replicas are found through Docker's DNS, so
# `docker compose up --scale api=N` needs no edit here.
# Generated from stack/haproxy_cfg.py (the template `make cluster` uses too):
# `python -m stack.haproxy_cfg --compose > compose/haproxy.cfg`. Do not edit by hand."""

COMPOSE_RESOLVERS = """
resolvers docker
    nameserver dns 127.0.0.11:53
    resolve_retries 3
    timeout resolve 1s
    timeout retry 1s
    hold valid 10s
    accepted_payload_size 8192
"""

COMPOSE_HEALTH = """
frontend health
    bind :8404
    monitor-uri /lb-health
"""

COMPOSE_SERVERS = """\
    default-server check inter 5s fall 3 rise 2 maxconn 2000 resolvers docker init-addr none
    server-template api 1-20 api:8000"""

CLUSTER_HEADER = "# `make cluster`: HAProxy in front of the API replicas on this machine (stack/haproxy_cfg.py)."

# Lenient checks: on a busy development machine a slow /ready must not take a replica out, and a
# restarted replica is back at its first good check.
CLUSTER_DEFAULT_SERVER = "    default-server check inter 2s fall 5 rise 1 maxconn 2000"
# For tests and debugging only: pin a request to a named replica with `X-Certus-Route: api2`.
ROUTE_RULE = "    use-server {name} if {{ req.hdr(X-Certus-Route) -m str {name} }}"


def render_compose() -> str:
    return TEMPLATE.substitute(header=COMPOSE_HEADER, maxconn=20000, resolvers=COMPOSE_RESOLVERS, bind=":8080",
                               health=COMPOSE_HEALTH, servers=COMPOSE_SERVERS)


def render_cluster(bind: str, replicas: dict[str, int], *, allow_routing: bool = True) -> str:
    """``replicas``: name -> port on 127.0.0.1. ``allow_routing`` honours ``X-Certus-Route``."""
    lines = [ROUTE_RULE.format(name=name) for name in replicas] if allow_routing else []
    lines.append(CLUSTER_DEFAULT_SERVER)
    lines += [f"    server {name} 127.0.0.1:{port}" for name, port in replicas.items()]
    return TEMPLATE.substitute(header=CLUSTER_HEADER, maxconn=4096, resolvers="", bind=bind, health="",
                               servers="\n".join(lines))


def haproxy_executable() -> str:
    found = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if Path(p).exists()), None)
    if not found:
        raise RuntimeError("haproxy is not installed: run scripts/system-deps.sh (Debian package `haproxy`)")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.haproxy_cfg",
                                     description="Print the HAProxy configuration of the compose stack.")
    parser.add_argument("--compose", action="store_true", help="compose/haproxy.cfg (make cluster writes its own)")
    if not parser.parse_args(argv).compose:
        parser.error("say which configuration: --compose")
    sys.stdout.write(render_compose())
    return 0


if __name__ == "__main__":  # pragma: no cover - generator
    sys.exit(main())
