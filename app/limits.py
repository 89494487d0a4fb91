"""Limits held in Redis so they hold across API replicas: a token bucket per key, open WebSockets
per key, and the nesting depth of JSON bodies (checked before parsing)."""

from __future__ import annotations

import math
import secrets
import time
from typing import Any

import redis

from tasks import keyspace
from tasks.api_keys import BUCKET_TAKE_LUA, KeyCheck, Principal, bucket_key, key_digest, key_record, principal_from

_ARGS_LUA = """
local rate = tonumber(ARGV[1])      -- tokens per ms
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
"""

_HIT_LUA = BUCKET_TAKE_LUA + _ARGS_LUA + """
local allowed, wait = take(KEYS[1], rate, burst, now)
return {allowed, wait}
"""

# The key's record and its bucket in one round trip: a request that names no stored key takes no
# token; one that does gets its record back with the bucket's answer.
_AUTH_HIT_LUA = BUCKET_TAKE_LUA + _ARGS_LUA + """
local record = redis.call('GET', KEYS[1])
if not record then return {'', 0, 0} end
local allowed, wait = take(KEYS[2], rate, burst, now)
return {record, allowed, wait}
"""


def _wait_seconds(allowed: Any, wait_ms: Any) -> int:
    return 0 if int(allowed) else max(1, math.ceil(int(wait_ms) / 1000))


def wait_seconds(wait_ms: int) -> int:
    """Whole seconds to wait, from a refused bucket's milliseconds."""
    return _wait_seconds(0, wait_ms)


class RateLimiter:
    """A token bucket per API key, held in Redis so it holds across API replicas.

    It also remembers the key records it has read (``recall``): a write that confirms the record
    and takes the token itself (``KeyCheck``) then needs no round trip of its own for them."""

    REMEMBERED = 1024

    def __init__(self, client: redis.Redis, per_minute: int, burst: int) -> None:
        self.redis = client
        self.rate = per_minute / 60000.0
        self.burst = burst
        self._hit = client.register_script(_HIT_LUA)
        self._auth_hit = client.register_script(_AUTH_HIT_LUA)
        self._seen: dict[str, tuple[str, Principal]] = {}

    def _args(self) -> list[Any]:
        return [repr(self.rate), self.burst, int(time.time() * 1000)]

    def hit(self, principal: Principal) -> int:
        """Take one token; returns 0 when allowed, else whole seconds to wait."""
        allowed, wait_ms = self._hit(keys=[bucket_key(principal.key_hash)], args=self._args())
        return _wait_seconds(allowed, wait_ms)

    def authenticate(self, plain: str) -> tuple[Principal | None, int]:
        """Look up an API key and take one of its tokens in one step: (principal or None, wait)."""
        digest = key_digest(plain)
        if digest is None:
            return None, 0
        record, allowed, wait_ms = self._auth_hit(keys=[key_record(digest), bucket_key(digest)], args=self._args())
        principal = principal_from(record, digest)
        self._remember(digest, record, principal)
        return principal, (_wait_seconds(allowed, wait_ms) if principal else 0)

    def _remember(self, digest: str, record: Any, principal: Principal | None) -> None:
        if principal is None:
            self._seen.pop(digest, None)
            return
        if len(self._seen) >= self.REMEMBERED:
            self._seen.clear()
        self._seen[digest] = (record.decode() if isinstance(record, bytes) else str(record), principal)

    def recall(self, plain: str) -> tuple[Principal, KeyCheck] | None:
        """The principal of a key this process has seen, and the check that confirms it (and takes
        its token) inside a write; None for a key not seen, or no longer stored when last read."""
        digest = key_digest(plain)
        seen = self._seen.get(digest) if digest is not None else None
        if digest is None or seen is None:
            return None
        record, principal = seen
        return principal, KeyCheck(digest, record, *self._args())


class StreamSlots:
    """Open WebSockets per key: a sorted set of connection ids scored by when they lapse, so a
    replica that dies without cleaning up frees its slots once they lapse."""

    LAPSE_S = 120

    def __init__(self, client: redis.Redis, cap: int) -> None:
        self.redis = client
        self.cap = cap

    def take(self, key_id: str) -> str | None:
        key = keyspace.stream_connections(key_id)
        now = time.time()
        conn = secrets.token_hex(6)
        pipe = self.redis.pipeline(transaction=True)
        pipe.zremrangebyscore(key, "-inf", now)
        pipe.zadd(key, {conn: now + self.LAPSE_S})
        pipe.zcard(key)
        pipe.expire(key, self.LAPSE_S * 2)
        count = pipe.execute()[2]
        if int(count) > self.cap:
            self.redis.zrem(key, conn)
            return None
        return conn

    def refresh(self, key_id: str, conn: str) -> None:
        key = keyspace.stream_connections(key_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(key, {conn: time.time() + self.LAPSE_S}, xx=True)
        pipe.expire(key, self.LAPSE_S * 2)
        pipe.execute()

    def release(self, key_id: str, conn: str) -> None:
        try:
            self.redis.zrem(keyspace.stream_connections(key_id), conn)
        except redis.RedisError:
            pass  # it lapses on its own


_QUOTE = ord('"')
_BACKSLASH = ord("\\")
_OPEN = frozenset(b"[{")
_CLOSE = frozenset(b"]}")


def json_depth(data: bytes) -> int:
    """The deepest nesting of arrays/objects in ``data``, without parsing it (so a hostile body
    cannot exhaust the parser's recursion).

    One pass over the bytes, whatever they hold: brackets count outside strings only, and inside a
    string a backslash hides the byte after it. A string left open runs to the end of the body
    (nothing after it is JSON, so no parser reaches the brackets there)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == _BACKSLASH:
                escaped = True
            elif byte == _QUOTE:
                in_string = False
        elif byte == _QUOTE:
            in_string = True
        elif byte in _OPEN:
            depth += 1
            if depth > deepest:
                deepest = depth
        elif byte in _CLOSE:
            depth -= 1
    return deepest


def too_deep(data: bytes, limit: int) -> bool:
    """Whether ``data`` nests deeper than ``limit``. A body with no more opening brackets than the
    limit cannot, which spares walking the usual small body."""
    return data.count(b"[") + data.count(b"{") > limit and json_depth(data) > limit
