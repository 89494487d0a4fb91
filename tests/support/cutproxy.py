"""A TCP proxy on loopback that cuts the first WebSocket connection after a byte budget, to test that
clients resume a stream from the last event id they received."""

from __future__ import annotations

import socket
import threading

from stack.ports import free_port


class CuttingProxy:
    def __init__(self, target_port: int, cut_after: int) -> None:
        self.target_port = target_port
        self.cut_after = cut_after
        self.port = free_port()
        self.cuts = 0
        self.stream_connections = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

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
        threading.Thread(target=self._pump, args=(client, upstream, None), daemon=True).start()
        self._pump(upstream, client, budget)

    def _pump(self, src: socket.socket, dst: socket.socket, budget: int | None) -> None:
        sent = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if budget is not None and sent + len(data) >= budget:
                    dst.sendall(data[: budget - sent])  # a frame cut in the middle, then the line drops
                    with self._lock:
                        self.cuts += 1
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

    def close(self) -> None:
        self._stop.set()
        self._server.close()
