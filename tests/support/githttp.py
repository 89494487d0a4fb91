"""A git smart-HTTP server on loopback (dulwich's WSGI application) behind HTTP basic auth, with a
path that redirects elsewhere: the real protocol an https git host speaks, minus TLS."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from dulwich.repo import Repo
from dulwich.server import DictBackend
from dulwich.web import make_wsgi_chain

from stack.ports import free_port


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class GitHttpServer:
    def __init__(self, repos: dict[str, Path], username: str, token: str) -> None:
        self.port = free_port()
        self.username = username
        self.token = token
        self.seen_auth: list[str] = []  # Authorization headers received, for leak checks
        served: dict[str, Any] = {f"/{name}": Repo(str(path)) for name, path in repos.items()}
        backend = DictBackend(served)
        self._git = make_wsgi_chain(backend)
        self._server = make_server("127.0.0.1", self.port, self._app, server_class=_ThreadingServer,
                                   handler_class=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, name: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/{name}"

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        auth = environ.get("HTTP_AUTHORIZATION", "")
        self.seen_auth.append(auth)
        if path.startswith("/moved/"):
            # A redirect to a host the service does not allow (localhost is loopback, not listed).
            target = f"http://localhost:{self.port}/{path[len('/moved/'):]}"
            query = environ.get("QUERY_STRING")
            start_response("301 Moved Permanently", [("Location", target + (f"?{query}" if query else ""))])
            return [b""]
        expected = "Basic " + base64.b64encode(f"{self.username}:{self.token}".encode()).decode()
        if auth != expected:
            start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="git"'),
                                                ("Content-Type", "text/plain")])
            return [b"authentication required\n"]
        answer: Iterable[bytes] = self._git(environ, start_response)
        return answer

    def start(self) -> GitHttpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
