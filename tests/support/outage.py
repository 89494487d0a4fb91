"""A TCP proxy on loopback in front of a server whose state lives in its process (moto's S3): taking
the proxy down refuses new connections and drops the open ones, as if the server had died, while
what the server holds survives for the checks after. With ``delay`` each connection waits that many
seconds before it reaches the server (a slow git server: scans that last a while)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

from tests.support.loopback_proxy import LoopbackProxy


class OutageProxy(LoopbackProxy):
    def __init__(self, target_port: int, delay: Callable[[], float] | None = None) -> None:
        self.delay = delay
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        super().__init__(target_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _handle(self, client: socket.socket) -> None:
        if self.delay is not None:
            time.sleep(self.delay())
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
        except OSError:
            client.close()
            return
        with self._lock:
            self._open.update((client, upstream))
        try:
            self.splice(client, upstream)
        finally:
            with self._lock:
                self._open.difference_update((client, upstream))

    def down(self) -> None:
        """Refuse connections and drop every open one."""
        try:
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the accept loop, which lets the port go
        except OSError:
            pass
        self.stop()
        with self._lock:
            for sock in list(self._open):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def up(self) -> None:
        """Listen again on the same port."""
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()
