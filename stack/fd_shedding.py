"""An API process that runs out of file descriptors answers new connections 503 instead of
leaving them waiting.

gevent's accept loop, on ``EMFILE``, logs a traceback and tries again later, so a new connection
waits in the listen queue (a client hangs) while the process is full. The server here keeps a
margin: a connection accepted onto one of the last ``headroom`` descriptors is answered 503
``too_many_connections`` with the error envelope and ``Retry-After`` and closed at once, so the
requests and streams already open keep the descriptors they need for Redis. If the limit is
reached all the same, a descriptor held in reserve is given up for a moment to accept and answer
the connection the same way. Either way the process goes on serving what it has, and takes new
connections again as soon as descriptors are freed. Refusals are logged at most once per
``LOG_EVERY`` seconds, with their count.

``stack/gunicorn_conf.py`` installs it in each gevent worker (``post_fork``).
"""

from __future__ import annotations

import _socket
import errno
import json
import logging
import os
import resource
import secrets
import time
from typing import Any

from gevent.monkey import get_original
from gevent.server import StreamServer

log = logging.getLogger("certus.api")

LOG_EVERY = 10.0
RETRY_AFTER = 5
OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE)


def headroom_for(limit: int) -> int:
    """Descriptors left for Redis connections of the requests and streams already open."""
    return min(64, max(8, limit // 32))


def busy_response() -> bytes:
    body = json.dumps({"error": {
        "code": "too_many_connections",
        "message": "this API process has no room for another connection; try again",
        "request_id": secrets.token_hex(8)}}, separators=(",", ":")).encode()
    head = ("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: {RETRY_AFTER}\r\nConnection: close\r\n\r\n")
    return head.encode() + body


def answer_busy(fd: int) -> None:
    """Answer 503 on an accepted connection and close it, without waiting for the client: what
    it already sent is read first, so the close does not reset the connection before the answer."""
    sock = _socket.socket(fileno=fd)
    try:
        sock.setblocking(False)
        try:
            while sock.recv(65536):
                pass
        except OSError:
            pass
        try:
            sock.send(busy_response())
            sock.shutdown(_socket.SHUT_WR)
        except OSError:
            pass
    finally:
        sock.close()


class SheddingStreamServer(StreamServer):
    """gevent's StreamServer, answering 503 on connections it has no descriptors for."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.ceiling = soft - headroom_for(soft) if soft != resource.RLIM_INFINITY else None
        self.reserve: int | None = self._take_reserve()
        self.refused = 0
        self.logged_at = 0.0

    @staticmethod
    def _take_reserve() -> int | None:
        try:
            return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None

    def do_read(self) -> Any:
        try:
            accepted = super().do_read()
        except OSError as exc:
            if exc.errno not in OUT_OF_DESCRIPTORS or not self._refuse_with_reserve():
                raise  # gevent logs it and accepts again after a pause
            return None
        if accepted is None:
            return None
        sock, _address = accepted
        if self.ceiling is not None and sock.fileno() >= self.ceiling:
            answer_busy(sock.detach())
            self._count_refusal()
            return None
        return accepted

    def _refuse_with_reserve(self) -> bool:
        if self.reserve is None:
            self.reserve = self._take_reserve()
            return False
        # The system's close, not gevent's: that one closes on the loop's next turn, too late.
        get_original("os", "close")(self.reserve)
        self.reserve = None
        try:
            fd, _address = self.socket._accept()
        except OSError:
            fd = None
        if fd is not None:
            answer_busy(fd)
            self._count_refusal()
        self.reserve = self._take_reserve()
        return True

    def _count_refusal(self) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self.logged_at >= LOG_EVERY:
            log.warning("out of file descriptors (limit %s): answered %d new connection(s) 503 "
                        "too_many_connections", resource.getrlimit(resource.RLIMIT_NOFILE)[0], self.refused)
            self.refused = 0
            self.logged_at = now


def install(worker: Any) -> None:
    """Make a gunicorn gevent worker serve with ``SheddingStreamServer`` (called after fork)."""
    from gunicorn.workers import ggevent

    if isinstance(worker, ggevent.GeventWorker) and worker.server_class is None:
        ggevent.StreamServer = SheddingStreamServer
