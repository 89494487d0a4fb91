"""Redis connections built from settings; nothing connects until a command is sent."""

from __future__ import annotations

import redis

# Blocking stream reads wait at most ws_block_ms (< 4 s); keep the socket timeout above that so a
# quiet stream never raises TimeoutError (redis-py 8 defaults to 5 s).
SOCKET_TIMEOUT = 10.0


def connect(url: str, *, max_connections: int = 2000) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=5.0,
        health_check_interval=30,
        max_connections=max_connections,
    )
