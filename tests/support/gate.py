"""A TCP proxy with a gate: while closed, new connections are accepted but not forwarded, so a
clone through it hangs at a known point; opening the gate lets every held connection through."""

from __future__ import annotations

import socket
import threading

from tests.support.loopback_proxy import LoopbackProxy


class GateProxy(LoopbackProxy):
    def __init__(self, target_port: int) -> None:
        self.opened = threading.Event()
        self.connections = 0
        super().__init__(target_port)

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def open(self) -> None:
        self.opened.set()

    def close(self) -> None:
        self.opened.clear()

    def shutdown(self) -> None:
        self.stop()
        self.opened.set()

    def _handle(self, client: socket.socket) -> None:
        self.connections += 1
        self.opened.wait()
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=30)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)  # a slow, busy machine must not cut a clone short
        self.splice(client, upstream)
