"""Redis connections built from settings; nothing connects until a command is sent.

Three kinds of URL are accepted, for state, streams and the broker alike:

* ``redis://[:password@]host:port/db`` and ``unix:///path/to/socket?db=0``;
* ``rediss://[user:password@]host:port/db``: TLS, checked against ``REDIS_TLS_CA_FILE`` (or the
  system's CAs), with an optional client certificate;
* ``sentinel://[:password@]host:26379/db;sentinel://host2:26379/db``: Sentinels that name the
  master of ``REDIS_SENTINEL_MASTER``. The password is the master's; the Sentinels' own is
  ``REDIS_SENTINEL_PASSWORD``. Clients follow a failover: a connection that fails asks the
  Sentinels again for the current master. The format is Kombu's, so the same URL serves as the
  Celery broker URL. With ``REDIS_SENTINEL_TLS`` the Sentinels and the master speak TLS, checked
  as for ``rediss://``.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from tasks.settings import Settings

# Blocking stream reads wait at most ws_block_ms (< 4 s); keep the socket timeout above that so a
# quiet stream never raises TimeoutError (redis-py 8 defaults to 5 s).
SOCKET_TIMEOUT = 10.0

T = TypeVar("T")


@dataclass(frozen=True)
class SentinelURL:
    hosts: list[tuple[str, int]]
    password: str | None
    username: str | None
    db: int


def is_sentinel(url: str) -> bool:
    return url.startswith("sentinel://")


def parse_sentinel_url(url: str) -> SentinelURL:
    """Parse Kombu's ``sentinel://`` form: one URL per Sentinel, joined with ``;``."""
    hosts: list[tuple[str, int]] = []
    password = username = None
    db = 0
    for part in filter(None, (p.strip() for p in url.split(";"))):
        parsed = urlsplit(part)
        if parsed.scheme != "sentinel" or not parsed.hostname:
            raise ValueError(f"not a sentinel URL: {part.split('@')[-1]!r}")
        hosts.append((parsed.hostname, parsed.port or 26379))
        if parsed.password:
            password = unquote(parsed.password)
            username = unquote(parsed.username) if parsed.username else None
        path = parsed.path.strip("/")
        if path:
            db = int(path)
    if not hosts:
        raise ValueError("a sentinel URL names no host")
    return SentinelURL(hosts, password, username, db)


def tls_options(settings: Settings | None) -> dict[str, Any]:
    """redis-py keyword arguments for a ``rediss://`` connection."""
    options: dict[str, Any] = {"ssl_cert_reqs": "required"}
    if settings is None:
        return options
    options["ssl_check_hostname"] = settings.redis_tls_check_hostname
    if settings.redis_tls_ca_file:
        options["ssl_ca_certs"] = settings.redis_tls_ca_file
    if settings.redis_tls_cert_file:
        options["ssl_certfile"] = settings.redis_tls_cert_file
        options["ssl_keyfile"] = settings.redis_tls_key_file or None
    return options


def uses_tls(url: str, settings: Settings | None) -> bool:
    """Whether connections for ``url`` speak TLS: ``rediss://``, or Sentinels with REDIS_SENTINEL_TLS."""
    return url.startswith("rediss://") or (is_sentinel(url) and settings is not None and settings.redis_sentinel_tls)


def celery_ssl_options(settings: Settings) -> dict[str, Any]:
    """The same TLS options in the form Celery's ``broker_use_ssl`` takes (an ``ssl`` constant
    where redis-py takes a name)."""
    return {**tls_options(settings), "ssl_cert_reqs": ssl.CERT_REQUIRED}


class OutageRetry(Retry):
    """Retries a command that failed on a lost connection, with backoff, until ``seconds`` have
    passed since it was first sent: a Redis restart shorter than that goes unnoticed by the caller."""

    def __init__(self, seconds: float) -> None:
        super().__init__(ExponentialWithJitterBackoff(base=0.1, cap=2.0), retries=-1)
        self.seconds = seconds

    def call_with_retry(self, do: Callable[[], T], fail: Callable[..., Any],
                        is_retryable: Callable[[Exception], bool] | None = None,
                        with_failure_count: bool = False) -> T:
        started = time.monotonic()

        def fail_or_give_up(error: Exception, *count: int) -> None:
            fail(error, *count)
            if time.monotonic() - started > self.seconds:
                raise error

        return super().call_with_retry(do, fail_or_give_up, is_retryable, with_failure_count)


def connect(url: str, *, settings: Settings | None = None, max_connections: int = 2000,
            outage_seconds: float = 0) -> redis.Redis:
    """A client for ``url``. With ``outage_seconds``, a command that meets a lost connection is
    retried until Redis is back or that long has passed (workers, whose scans should ride out a
    Redis restart); without, it fails within a few seconds (the API, which answers 503 then)."""
    common: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": 5.0,
        "health_check_interval": 30,
    }
    if outage_seconds > 0:
        common["retry"] = OutageRetry(outage_seconds)
    if is_sentinel(url):
        if settings is None or not settings.redis_sentinel_master:
            raise ValueError("a sentinel:// URL needs REDIS_SENTINEL_MASTER")
        parsed = parse_sentinel_url(url)
        tls = {"ssl": True, **tls_options(settings)} if uses_tls(url, settings) else {}
        sentinel_kwargs: dict[str, Any] = {"socket_timeout": 5.0, "socket_connect_timeout": 5.0, **tls}
        if settings.redis_sentinel_password:
            sentinel_kwargs["password"] = settings.redis_sentinel_password
        sentinel = Sentinel(parsed.hosts, sentinel_kwargs=sentinel_kwargs, password=parsed.password,
                            username=parsed.username, db=parsed.db, max_connections=max_connections, **common,
                            **tls)
        master: redis.Redis = sentinel.master_for(settings.redis_sentinel_master, redis_class=redis.Redis)
        return master
    extra = tls_options(settings) if uses_tls(url, settings) else {}
    return redis.Redis.from_url(url, max_connections=max_connections, **common, **extra)
