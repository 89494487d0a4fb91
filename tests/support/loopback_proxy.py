"""The shared part of the tests' TCP proxies on loopback: a listening socket, an accept loop that
hands each connection to ``_handle``, and a pump that copies one direction, optionally cutting it
after a byte budget."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

from stack.ports import free_port


class LoopbackProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        raise NotImplementedError

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self._server.close()

    @staticmethod
    def pump(src: socket.socket, dst: socket.socket, budget: int | None = None,
             on_cut: Callable[[], None] | None = None) -> None:
        """Copy ``src`` to ``dst`` until either side ends; with ``budget``, send only that many bytes
        (a frame cut in the middle) and drop the line. Both sockets are shut down at the end."""
        sent = 0
        try:
            while data := src.recv(65536):
                if budget is not None and sent + len(data) >= budget:
                    dst.sendall(data[: budget - sent])
                    if on_cut is not None:
                        on_cut()
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def splice(self, client: socket.socket, upstream: socket.socket, budget: int | None = None,
               on_cut: Callable[[], None] | None = None) -> None:
        """Both directions: client → upstream in a thread, upstream → client (with ``budget``) here."""
        threading.Thread(target=self.pump, args=(client, upstream), daemon=True).start()
        self.pump(upstream, client, budget, on_cut)
