"""HTTP(S) sessions that connect to the very address the network policy checked.

A plain ``requests`` call looks the host name up again when it connects, after the policy looked it
up: a DNS server answering a public address the first time and an internal one the second (DNS
rebinding) would steer the request past the check. Here every new connection asks ``resolve`` —
which runs the policy and returns the addresses it checked — and connects to one of those addresses.
The connection keeps the host name for everything else: TLS sends it as SNI and verifies the
certificate against it, and the ``Host`` header names it. Redirects open new connections, so each
hop meets the policy too.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util import connection

# (host, port) -> the addresses the policy allowed for it; raises to refuse the host.
Resolver = Callable[[str, int], list[str]]


class _Pinned:
    """Mixed into urllib3's connection classes: ``_new_conn`` connects to a checked address."""

    resolve: Resolver
    host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any

    def _new_conn(self) -> socket.socket:
        addresses = type(self).resolve(self.host, self.port)
        if not addresses:
            raise NewConnectionError(self, f"no address allowed for {self.host}")  # type: ignore[arg-type]
        error: OSError | None = None
        for address in addresses:
            try:
                sock = connection.create_connection((address, self.port), self.timeout,
                                                    source_address=self.source_address,
                                                    socket_options=self.socket_options)
            except TimeoutError as exc:
                raise ConnectTimeoutError(self, f"Connection to {self.host} timed out") from exc
            except OSError as exc:
                error = exc
                continue
            sys.audit("http.client.connect", self, self.host, self.port)
            return sock
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}")  # type: ignore[arg-type]


def _adapter(resolve: Resolver) -> HTTPAdapter:
    pinned_http = type("PinnedHTTPConnection", (_Pinned, HTTPConnection), {"resolve": staticmethod(resolve)})
    pinned_https = type("PinnedHTTPSConnection", (_Pinned, HTTPSConnection), {"resolve": staticmethod(resolve)})
    http_pool = type("PinnedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": pinned_http})
    https_pool = type("PinnedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": pinned_https})

    class PinnedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": http_pool, "https": https_pool}

    return PinnedAdapter()


def pinned_session(resolve: Resolver) -> requests.Session:
    """A session whose every connection goes to an address ``resolve`` returned for its host.
    Proxies and ``.netrc`` from the environment are ignored (``trust_env`` off)."""
    session = requests.Session()
    session.trust_env = False
    adapter = _adapter(resolve)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
