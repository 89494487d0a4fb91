"""A TCP port on loopback that records who connects, and hangs up on them: for tests that must
show a connection was, or was never, made."""

from __future__ import annotations

import socket
import threading


def recording_listener(address: str = "127.0.0.1") -> tuple[socket.socket, list[str]]:
    """A listening socket on ``address`` and the list of peers that connected to it so far.
    Closing the socket ends the listener."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind((address, 0))
    sock.listen(8)
    seen: list[str] = []

    def serve() -> None:
        while True:
            try:
                conn, peer = sock.accept()
            except OSError:
                return
            seen.append(peer[0])
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return sock, seen
