"""API keys and short-lived stream tokens, stored hashed in Redis.

A key looks like ``ca_<key id>_<secret>``. Only the SHA-256 of the whole key is stored
(``ca:key:{sha256}``), so a copy of Redis does not hand out working keys; the key id is not
secret and names the key in listings and for revocation. Each key has one role and one or more
workspaces (``*`` for every workspace).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import redis

from tasks import keyspace

ROLES = ("reader", "submitter", "publisher", "triager", "admin")
# What each role may do. reader, submitter, publisher and admin are a ladder: each includes the ones
# before it. triager stands beside it: it reads and triages findings (waives them from the gate)
# and nothing else, so the keys that submit and publish, a CI job's, cannot waive their own gate.
PERMISSIONS: dict[str, frozenset[str]] = {
    "reader": frozenset({"read"}),
    "submitter": frozenset({"read", "submit"}),
    "publisher": frozenset({"read", "submit", "publish"}),
    "triager": frozenset({"read", "triage"}),
    "admin": frozenset({"read", "submit", "publish", "triage", "admin"}),
}
ALL_WORKSPACES = "*"
WORKSPACE_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}\Z")
KEY_RE = re.compile(r"^ca_([0-9a-f]{12})_([A-Za-z0-9_-]{32,64})\Z")
TOKEN_RE = re.compile(r"^cst_[A-Za-z0-9_-]{32,64}\Z")
KEYS_INDEX = keyspace.KEYS_INDEX


class InvalidKeySpec(ValueError):
    """A key cannot be created as asked (bad role or workspace)."""


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, role and workspaces."""

    key_id: str
    role: str
    workspaces: frozenset[str]
    name: str = ""
    key_hash: str = field(default="", repr=False)

    def can(self, permission: str) -> bool:
        return permission in PERMISSIONS.get(self.role, frozenset())

    def sees(self, workspace_id: str | None) -> bool:
        return bool(workspace_id) and (ALL_WORKSPACES in self.workspaces or workspace_id in self.workspaces)

    @property
    def all_workspaces(self) -> bool:
        return ALL_WORKSPACES in self.workspaces


def key_digest(plain: str) -> str | None:
    """The stored name of a key, or None when ``plain`` is not shaped like one of ours."""
    return _sha256(plain) if KEY_RE.match(plain) else None


def bucket_key(digest: str) -> str:
    """The rate-limit bucket of a key (see ``app.limits``)."""
    return keyspace.rate_bucket(digest)


def key_record(digest: str) -> str:
    return keyspace.api_key(digest)


# The token bucket of a key: one hash with the tokens left and when they were counted. `take`
# returns allowed (0/1) and the milliseconds to wait. Shared by every script that takes a token.
BUCKET_TAKE_LUA = """
local function take(bucket, rate, burst, now)
  local state = redis.call('HMGET', bucket, 't', 'ts')
  local tokens = tonumber(state[1]) or burst
  local ts = tonumber(state[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
  local allowed = 0
  local wait = 0
  if tokens >= 1 then
    tokens = tokens - 1
    allowed = 1
  else
    wait = math.ceil((1 - tokens) / rate)
  end
  redis.call('HSET', bucket, 't', tostring(tokens), 'ts', tostring(now))
  redis.call('PEXPIRE', bucket, math.ceil(burst / rate) + 1000)
  return allowed, wait
end
"""


@dataclass(frozen=True)
class KeyCheck:
    """A key record as this process last read it, to be confirmed inside a write: the write happens
    only if the stored record is still exactly ``record`` (a revoked key has none) and one of the
    key's tokens can be taken (``rate`` per ms, ``burst``, at ``now_ms``)."""

    digest: str
    record: str
    rate: str
    burst: int
    now_ms: int

    @property
    def keys(self) -> list[str]:
        return [key_record(self.digest), bucket_key(self.digest)]

    @property
    def args(self) -> list[Any]:
        return [self.record, self.rate, self.burst, self.now_ms]


def principal_from(raw: Any, digest: str) -> Principal | None:
    """The principal of a stored key record (None when there is none)."""
    if not raw:
        return None
    meta = json.loads(raw)
    return Principal(meta["key_id"], meta["role"], frozenset(meta["workspaces"]), meta.get("name", ""), digest)


class KeyStore:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    # -- keys --------------------------------------------------------------------------------
    def create(self, role: str, workspaces: list[str], name: str = "") -> tuple[str, Principal]:
        """Mint a key; returns the plain key (shown once) and its principal."""
        if role not in ROLES:
            raise InvalidKeySpec(f"role must be one of {', '.join(ROLES)}")
        wanted = sorted(set(workspaces))
        if not wanted:
            raise InvalidKeySpec("name at least one workspace (or * for all)")
        for ws in wanted:
            if ws != ALL_WORKSPACES and not WORKSPACE_RE.match(ws):
                raise InvalidKeySpec(f"not a workspace id: {ws!r}")
        key_id = secrets.token_hex(6)
        plain = f"ca_{key_id}_{secrets.token_urlsafe(32)}"
        digest = _sha256(plain)
        meta = {"key_id": key_id, "role": role, "workspaces": wanted, "name": name[:200],
                "created_at": time.time()}
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(key_record(digest), json.dumps(meta))
        pipe.hset(KEYS_INDEX, key_id, json.dumps({**meta, "hash": digest}))
        pipe.execute()
        return plain, Principal(key_id, role, frozenset(wanted), name, digest)

    def _principal(self, digest: str) -> Principal | None:
        return principal_from(self.redis.get(key_record(digest)), digest)

    def authenticate(self, plain: str) -> Principal | None:
        digest = key_digest(plain)
        return self._principal(digest) if digest else None

    def list(self) -> list[dict[str, Any]]:
        raw: Any = self.redis.hgetall(KEYS_INDEX)
        items = [json.loads(v) for v in raw.values()]
        for item in items:
            item.pop("hash", None)
        return sorted(items, key=lambda m: m["created_at"])

    def revoke(self, key_id: str) -> bool:
        raw: Any = self.redis.hget(KEYS_INDEX, key_id)
        if not raw:
            return False
        digest = json.loads(raw)["hash"]
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(key_record(digest))
        pipe.hdel(KEYS_INDEX, key_id)
        pipe.delete(keyspace.stream_connections(key_id), bucket_key(digest))
        pipe.execute()
        return True

    # -- stream tokens -----------------------------------------------------------------------
    def issue_stream_token(self, principal: Principal, ttl_seconds: int) -> str:
        """A single-use token for one WebSocket connection, bound to the key that asked for it."""
        token = "cst_" + secrets.token_urlsafe(32)
        self.redis.set(keyspace.stream_token(_sha256(token)), principal.key_hash, ex=ttl_seconds)
        return token

    def redeem_stream_token(self, token: str) -> Principal | None:
        if not TOKEN_RE.match(token):
            return None
        digest: Any = self.redis.getdel(keyspace.stream_token(_sha256(token)))
        # The key is looked up again: a token of a key revoked since is worthless.
        return self._principal(digest) if digest else None
