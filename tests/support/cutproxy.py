"""A TCP proxy on loopback that cuts the first WebSocket connection after a byte budget, to test that
clients resume a stream from the last event id they received."""

from __future__ import annotations

import socket
import threading

from tests.support.loopback_proxy import LoopbackProxy


class CuttingProxy(LoopbackProxy):
    def __init__(self, target_port: int, cut_after: int) -> None:
        self.cut_after = cut_after
        self.cuts = 0
        self.stream_connections = 0
        self._lock = threading.Lock()
        super().__init__(target_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _handle(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        first = client.recv(65536)
        budget = None
        if b"/stream" in first.split(b"\r\n", 1)[0]:
            with self._lock:
                self.stream_connections += 1
                if self.stream_connections == 1:
                    budget = self.cut_after
        upstream.sendall(first)
        self.splice(client, upstream, budget, self._count_cut)

    def _count_cut(self) -> None:
        with self._lock:
            self.cuts += 1

    def close(self) -> None:
        self.stop()
