"""The scan state store in Redis: one hash per scan, indexes for listing, one set per status.

Each hash field holds a JSON value, so the worker and the API can update different fields without
reading and rewriting the whole record. Status changes go through one Lua script, which checks the
current status and moves the scan between the per-status sets atomically.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import redis

from tasks import metrics
from tasks.api_keys import BUCKET_TAKE_LUA, KeyCheck
from tasks.clock import utcnow_iso
from tasks.enqueue import QueuedTask

QUEUED = "QUEUED"
RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"
STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})

# Which status may follow which. RUNNING -> RUNNING is a restart after a lost worker.
TRANSITIONS: dict[str, frozenset[str]] = {
    QUEUED: frozenset({RUNNING, FAILED, CANCELLED}),
    RUNNING: frozenset({RUNNING, SUCCEEDED, FAILED, CANCELLED}),
    SUCCEEDED: frozenset(),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
}

UPLOAD_STATUSES = ("pending", "permitted", "uploaded", "denied", "upload_failed")

_TRANSITION_LUA = """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {0, ''} end
cur = cjson.decode(cur)
local n_allowed = tonumber(ARGV[2])
local allowed = false
for i = 3, 2 + n_allowed do
  if ARGV[i] == cur then allowed = true end
end
if not allowed then return {0, cur} end
local new = ARGV[1]
local i = 3 + n_allowed
local n_fields = tonumber(ARGV[i])
-- The event goes first: if its id is refused, nothing else has been written.
local e = i + 1 + 2 * n_fields
if ARGV[e] ~= '' then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[e + 2], ARGV[e], 'e', ARGV[e + 1])
end
i = i + 1
for _ = 1, n_fields do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  i = i + 2
end
redis.call('HSET', KEYS[1], 'status', cjson.encode(new))
if cur ~= new then redis.call('SREM', KEYS[2] .. cur, KEYS[3]) end
redis.call('SADD', KEYS[2] .. new, KEYS[3])
if cur == 'QUEUED' and new ~= 'QUEUED' then
  -- the per-workspace queued set keeps the queue cap an O(1) check
  local ws = redis.call('HGET', KEYS[1], 'workspace_id')
  if ws then redis.call('SREM', 'ca:queued:ws:' .. cjson.decode(ws), KEYS[3]) end
end
return {1, cur}
"""


# KEYS: record, all-index, workspace index, status set, workspace queued set, stream, task list,
# API key record, its bucket. ARGV: queue cap, score, id, status, event id, event, stream maxlen,
# task, then the key check (expected record, rate, burst, now; see tasks.api_keys.KeyCheck), then the
# record's fields. Answers {1, 0} written, {0, queued} queue full, {-1, 0} key not as expected,
# {-2, wait ms} key out of tokens.
_CREATE_LUA = BUCKET_TAKE_LUA + """
if KEYS[8] ~= 'ca:none' then
  if redis.call('GET', KEYS[8]) ~= ARGV[9] then return {-1, 0} end
  local allowed, wait = take(KEYS[9], tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12]))
  if allowed == 0 then return {-2, wait} end
end
if ARGV[1] ~= '' and ARGV[4] == 'QUEUED' then
  local queued = redis.call('SCARD', KEYS[5])
  if queued >= tonumber(ARGV[1]) then return {0, queued} end
end
if ARGV[5] ~= '' then
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[7], ARGV[5], 'e', ARGV[6])
end
redis.call('HSET', KEYS[1], unpack(ARGV, 13))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
redis.call('SADD', KEYS[4], ARGV[3])
if ARGV[4] == 'QUEUED' then redis.call('SADD', KEYS[5], ARGV[3]) end
if ARGV[8] ~= '' then redis.call('LPUSH', KEYS[7], ARGV[8]) end
return {1, 0}
"""


class StoreError(RuntimeError):
    pass


class QueueFull(StoreError):
    """The workspace already has as many scans queued as its cap allows."""

    def __init__(self, queued: int) -> None:
        super().__init__(f"{queued} scans already queued")
        self.queued = queued


class KeyNotCurrent(StoreError):
    """The API key's stored record is no longer the one the write was checked against."""


class KeyRateLimited(StoreError):
    """The API key had no token left for the write."""

    def __init__(self, wait_ms: int) -> None:
        super().__init__(f"no token for {wait_ms} ms")
        self.wait_ms = wait_ms


class InvalidCursor(ValueError):
    pass


@dataclass(frozen=True)
class StreamAppend:
    """An event to append together with a status change (see ``ScanStore.transition``)."""

    key: str
    event_id: str
    payload: str
    maxlen: int


@dataclass(frozen=True)
class TransitionResult:
    ok: bool
    previous: str | None


# One encoder for every field: json.dumps with options builds a new one per call.
_dumps = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode


def encode_cursor(score: float, test_id: str) -> str:
    return base64.urlsafe_b64encode(f"{score!r}|{test_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        score_text, test_id = base64.urlsafe_b64decode(padded.encode()).decode().split("|", 1)
        return float(score_text), test_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursor("cursor is not one this service issued") from exc


class ScanStore:
    """Scan records. Keys: ``ca:scan:{id}`` (hash), ``ca:idx:*`` (zsets), ``ca:status:{S}`` (sets)."""

    def __init__(self, client: redis.Redis, *, retention_seconds: int = 30 * 24 * 3600) -> None:
        self.redis = client
        self.retention_seconds = retention_seconds
        self._transition = client.register_script(_TRANSITION_LUA)
        self._create = client.register_script(_CREATE_LUA)

    @staticmethod
    def key(test_id: str) -> str:
        return f"ca:scan:{test_id}"

    # -- writing -----------------------------------------------------------------------------
    def create(self, record: Mapping[str, Any], *, event: StreamAppend | None = None,
               queue_cap: int | None = None, task: QueuedTask | None = None,
               key_check: KeyCheck | None = None) -> None:
        """Write a new record, its indexes, and optionally its first event and its task message, in
        one atomic step.

        With ``queue_cap``, a QUEUED record is written only while its workspace has fewer scans
        queued than that; otherwise nothing is written and ``QueueFull`` is raised. The check and
        the write are one step, so concurrent submitters cannot overshoot the cap.

        With ``key_check``, the write happens only while the caller's API key is stored as the check
        expects (``KeyNotCurrent`` otherwise) and has a token to take (``KeyRateLimited``): the
        submitter is authenticated in the same step as its write, not one round trip before it.
        """
        test_id = record["test_id"]
        args: list[Any] = ["" if queue_cap is None else queue_cap, repr(time.time()), test_id, record["status"],
                           *((event.event_id, event.payload, event.maxlen) if event is not None else ("", "", 0)),
                           task.payload if task is not None else "",
                           *(key_check.args if key_check is not None else ("", "", "", ""))]
        for name, value in record.items():
            args += [name, _dumps(value)]
        keys = [self.key(test_id), "ca:idx:all", f"ca:idx:ws:{record['workspace_id']}",
                f"ca:status:{record['status']}", queued_key(record["workspace_id"]),
                event.key if event is not None else "ca:none", task.queue if task is not None else "ca:none",
                *(key_check.keys if key_check is not None else ("ca:none", "ca:none"))]
        answer, detail = (int(v) for v in self._create(keys=keys, args=args))
        if answer == -1:
            raise KeyNotCurrent("the API key changed or was revoked")
        if answer == -2:
            raise KeyRateLimited(detail)
        if answer == 0:
            raise QueueFull(detail)

    def delete(self, test_id: str, workspace_id: str) -> None:
        """Remove every trace of a scan (used when a submission could not be enqueued)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self.key(test_id))
        pipe.zrem("ca:idx:all", test_id)
        pipe.zrem(f"ca:idx:ws:{workspace_id}", test_id)
        for status in STATUSES:
            pipe.srem(f"ca:status:{status}", test_id)
        pipe.srem(queued_key(workspace_id), test_id)
        pipe.execute()

    def update(self, test_id: str, **fields: Any) -> None:
        if fields:
            self.redis.hset(self.key(test_id), mapping={k: _dumps(v) for k, v in fields.items()})

    def transition(self, test_id: str, new_status: str, *, allowed_from: Iterable[str] | None = None,
                   event: StreamAppend | None = None, **fields: Any) -> TransitionResult:
        """Move a scan to ``new_status`` if its current status allows it; set ``fields`` with it.

        ``event`` is appended to the scan's stream in the same atomic step, so a reader never sees
        a finished record without its ``scan_complete`` event, nor the reverse.
        """
        if allowed_from is None:
            allowed_from = [s for s, nxt in TRANSITIONS.items() if new_status in nxt]
        allowed = list(allowed_from)
        args: list[str] = [new_status, str(len(allowed)), *allowed, str(len(fields))]
        for name, value in fields.items():
            args += [name, _dumps(value)]
        if event is not None:
            args += [event.event_id, event.payload, str(event.maxlen)]
            stream = event.key
        else:
            args += ["", "", "0"]
            stream = "ca:none"
        ok, previous = self._transition(keys=[self.key(test_id), "ca:status:", test_id, stream],
                                        args=args)
        result = TransitionResult(bool(ok), previous or None)
        if result.ok and event is not None:
            metrics.EVENTS_APPENDED.labels(type=json.loads(event.payload).get("type", "unknown")).inc()
        if result.ok and new_status in TERMINAL:
            self.redis.expire(self.key(test_id), self.retention_seconds)
        return result

    # -- reading -----------------------------------------------------------------------------
    def get(self, test_id: str) -> dict[str, Any] | None:
        raw: Any = self.redis.hgetall(self.key(test_id))
        if not raw:
            return None
        return {k: json.loads(v) for k, v in raw.items()}

    def get_fields(self, test_id: str, *names: str) -> dict[str, Any]:
        values = self.redis.hmget(self.key(test_id), list(names))
        return {n: (json.loads(v) if v is not None else None) for n, v in zip(names, values, strict=True)}

    def exists(self, test_id: str) -> bool:
        return bool(self.redis.exists(self.key(test_id)))

    def list(self, *, workspace_id: str | None = None, status: str | None = None,
             component_id: str | None = None, cursor: str | None = None,
             limit: int = 50, workspaces: Iterable[str] | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first. Returns one page and the cursor of the next page (None at the end)."""
        index = f"ca:idx:ws:{workspace_id}" if workspace_id else "ca:idx:all"
        only = frozenset(workspaces) if workspaces is not None else None
        max_score: str = "+inf"
        after_id: str | None = None
        if cursor:
            score, after_id = decode_cursor(cursor)
            max_score = repr(score)
        page: list[dict[str, Any]] = []
        batch = max(limit * 2, 50)
        offset = 0
        while len(page) < limit:
            members: Any = self.redis.zrevrangebyscore(index, max_score, "-inf", start=offset, num=batch,
                                                  withscores=True)
            if not members:
                return page, None
            offset += len(members)
            for test_id, score in members:
                if after_id is not None:
                    # Skip up to and including the cursor's entry (equal scores sort by member).
                    if repr(score) == max_score and test_id >= after_id:
                        continue
                record = self.get(test_id)
                if record is None:  # expired: drop it from the indexes lazily
                    self.redis.zrem(index, test_id)
                    continue
                if status and record.get("status") != status:
                    continue
                if component_id and record.get("component_id") != component_id:
                    continue
                if only is not None and record.get("workspace_id") not in only:
                    continue
                page.append(record)
                if len(page) == limit:
                    return page, encode_cursor(score, test_id)
        return page, None

    def counts_by_status(self) -> dict[str, int]:
        pipe = self.redis.pipeline(transaction=False)
        for status in STATUSES:
            pipe.scard(f"ca:status:{status}")
        return dict(zip(STATUSES, (int(n) for n in pipe.execute()), strict=True))

    def queued_in_workspace(self, workspace_id: str) -> int:
        """How many scans of one workspace are QUEUED (one set per workspace, kept by create and
        transition, so the per-workspace cap costs one command however long the queue is)."""
        return int(self.redis.scard(queued_key(workspace_id)))

    def ids_with_status(self, status: str) -> set[str]:
        members: Any = self.redis.smembers(f"ca:status:{status}")
        return set(members)


def queued_key(workspace_id: str) -> str:
    return f"ca:queued:ws:{workspace_id}"


def new_record(**fields: Any) -> dict[str, Any]:
    """A fresh QUEUED record with every field the status endpoint reports."""
    record: dict[str, Any] = {
        "status": QUEUED,
        "created_at": utcnow_iso(),
        "started_at": None,
        "completed_at": None,
        "resolved_commit": None,
        "phases": [],
        "summary": None,
        "policy": None,
        "artifacts": {},
        "warnings": [],
        "errors": [],
        "manifest_metadata": None,
        "upload_status": None,
        "upload_permission_id": None,
        "verification_proof": None,
        "remote_artifacts": None,
        "attempt": 0,
        "cancel_requested": False,
    }
    record.update(fields)
    return record
