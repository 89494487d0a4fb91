"""The load balancer `make cluster` renders (stack/haproxy_cfg.py, compose's template too), run by a
real HAProxy in front of two small HTTP servers: /metrics is refused at the load balancer, every
other path reaches a replica, and the route header pins a request to one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from stack import processes
from stack.haproxy_cfg import haproxy_executable, render_cluster
from stack.ports import free_port, wait_port

pytestmark = pytest.mark.integration
# The load balancer's URL, and what each replica was asked: (path, X-Request-ID).
Balancer = tuple[str, dict[str, list[tuple[str, str | None]]]]


class Replica(BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None]]

    def do_GET(self) -> None:  # noqa: N802 - the http.server interface
        if self.path != "/ready":  # not the load balancer's health checks
            self.seen.append((self.path, self.headers.get("X-Request-ID")))
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def balancer(tmp_path: Path) -> Iterator[Balancer]:
    servers: list[ThreadingHTTPServer] = []
    seen: dict[str, list[tuple[str, str | None]]] = {}
    ports: dict[str, int] = {}
    for name in ("api1", "api2"):
        seen[name] = []
        handler = type(f"Replica_{name}", (Replica,), {"seen": seen[name]})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        ports[name] = int(server.server_address[1])
    port = free_port()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(render_cluster(f"127.0.0.1:{port}", ports))
    proc = processes.spawn([haproxy_executable(), "-db", "-f", str(cfg)], {}, tmp_path / "haproxy.log")
    try:
        wait_port("127.0.0.1", port, 30)
        yield f"http://127.0.0.1:{port}", seen
    finally:
        processes.stop(proc, timeout=10)
        for server in servers:
            server.shutdown()
            server.server_close()


def test_metrics_are_refused_at_the_load_balancer_and_the_rest_passes(balancer: Balancer) -> None:
    url, seen = balancer
    refused = requests.get(url + "/metrics", timeout=10)
    assert refused.status_code == 404
    assert "X-Certus-Backend" not in refused.headers
    for path in ("/stats", "/v1/security-scans", "/metrics-not"):
        resp = requests.get(url + path, timeout=10, headers={"X-Certus-Route": "api2"})
        assert resp.status_code == 200, path
        assert resp.headers["X-Certus-Backend"] == "api2"
    assert [path for path, _ in seen["api2"]] == ["/stats", "/v1/security-scans", "/metrics-not"]
    assert seen["api1"] == []


def test_requests_are_spread_and_given_an_id(balancer: Balancer) -> None:
    url, seen = balancer
    backends = set()
    for _ in range(6):
        resp = requests.get(url + "/health", timeout=10)  # a new connection each time
        assert resp.status_code == 200
        backends.add(resp.headers["X-Certus-Backend"])
    assert backends == {"api1", "api2"}
    ids = [request_id for name in ("api1", "api2") for _, request_id in seen[name]]
    assert len(ids) == 6 and all(ids) and len(set(ids)) == 6
    requests.get(url + "/health", timeout=10, headers={"X-Request-ID": "client-chosen"})
    assert ("/health", "client-chosen") in seen["api1"] + seen["api2"]
