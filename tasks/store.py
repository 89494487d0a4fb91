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

from tasks import keyspace, metrics
from tasks.api_keys import BUCKET_TAKE_LUA, KeyCheck
from tasks.enqueue import QueuedTask
from tasks.records import ScanRecord, decode_fields, fields_of
from tasks.states import TERMINAL, TRANSITIONS, ScanStatus

# The names the rest of the service imports from here.
QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (ScanStatus.QUEUED, ScanStatus.RUNNING, ScanStatus.SUCCEEDED,
                                                 ScanStatus.FAILED, ScanStatus.CANCELLED)
STATUSES: tuple[ScanStatus, ...] = tuple(ScanStatus)

# One compare-and-set of a status field of a scan's hash (the scan's ``status`` or its
# ``upload_status``), with that field's bookkeeping, in one atomic step.
# KEYS: record, bookkeeping (the status-set prefix, or the upload counts hash), scan id, stream (or
# ca:none), the per-workspace queued-set prefix.
# ARGV: field, new value, mode ('sets' | 'counts'), n guards, (guard field, expected)*, n allowed,
# allowed*, n fields, (name, JSON value)*, event id, event, stream maxlen.
# Answers {1, previous, '', ''} when written, {0, previous, guard, its value} when a guard refused
# ('missing' when there is no record), {0, previous, '', ''} when the current value is not allowed.
CAS_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, '', 'missing', ''} end
local function current(name)
  local v = redis.call('HGET', KEYS[1], name)
  if v then v = cjson.decode(v) end
  if type(v) ~= 'string' then return '' end
  return v
end
local name, new, mode = ARGV[1], ARGV[2], ARGV[3]
local cur = current(name)
local i = 5
for _ = 1, tonumber(ARGV[4]) do
  local got = current(ARGV[i])
  if got ~= ARGV[i + 1] then return {0, cur, ARGV[i], got} end
  i = i + 2
end
local n_allowed = tonumber(ARGV[i])
i = i + 1
local allowed = false
for _ = 1, n_allowed do
  if ARGV[i] == cur then allowed = true end
  i = i + 1
end
if not allowed then return {0, cur, '', ''} end
local n_fields = tonumber(ARGV[i])
i = i + 1
-- The event goes first: if its id is refused, nothing else has been written.
local e = i + 2 * n_fields
if ARGV[e] ~= '' then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[e + 2], ARGV[e], 'e', ARGV[e + 1])
end
for _ = 1, n_fields do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  i = i + 2
end
redis.call('HSET', KEYS[1], name, cjson.encode(new))
if mode == 'sets' then
  if cur ~= new then redis.call('SREM', KEYS[2] .. cur, KEYS[3]) end
  redis.call('SADD', KEYS[2] .. new, KEYS[3])
  if cur == 'QUEUED' and new ~= 'QUEUED' then
    -- the per-workspace queued set keeps the queue cap an O(1) check
    local ws = redis.call('HGET', KEYS[1], 'workspace_id')
    if ws then redis.call('SREM', KEYS[5] .. cjson.decode(ws), KEYS[3]) end
  end
else
  if cur ~= '' then redis.call('HINCRBY', KEYS[2], cur, -1) end
  redis.call('HINCRBY', KEYS[2], new, 1)
end
return {1, cur, '', ''}
"""


@dataclass(frozen=True)
class Move:
    """What a compare-and-set did: ``ok``, the value it found (``previous``, '' for none) and, when
    a guard refused it, which guard field (``guard``: 'missing' when there is no record) and its value."""

    ok: bool
    previous: str
    guard: str = ""
    guard_value: str = ""


# KEYS: record, all-index, workspace index, status set, workspace queued set, stream, task list,
# API key record, its bucket. ARGV: queue cap, score, id, status, event id, event, stream maxlen,
# task, then the key check (expected record, rate, burst, now; see tasks.api_keys.KeyCheck), then the
# record's fields. Answers {1, 0} written, {0, queued} queue full, {-1, 0} key not as expected,
# {-2, wait ms} key out of tokens.
_CREATE_LUA = BUCKET_TAKE_LUA + """
if KEYS[8] ~= '""" + keyspace.NONE + """' then
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
    previous: ScanStatus | None


def encode_cursor(score: float, test_id: str) -> str:
    return base64.urlsafe_b64encode(f"{score!r}|{test_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        score_text, test_id = base64.urlsafe_b64decode(padded.encode()).decode().split("|", 1)
        return float(score_text), test_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursor("cursor is not one this service issued") from exc


class CompareAndSet:
    """The one compare-and-set script (``CAS_LUA``), for a scan's status and its upload status."""

    def __init__(self, client: redis.Redis) -> None:
        self._script = client.register_script(CAS_LUA)

    def __call__(self, test_id: str, field: str, new: str, *, allowed: Iterable[str],
                 guards: Mapping[str, str] | None = None, values: Mapping[str, object] | None = None,
                 event: StreamAppend | None = None) -> Move:
        allowed = list(allowed)
        guard_items = list((guards or {}).items())
        written = fields_of(values or {})
        mode, bookkeeping = ("sets", keyspace.STATUS_PREFIX) if field == "status" else ("counts",
                                                                                      keyspace.UPLOAD_COUNTS)
        args: list[str] = [field, new, mode, str(len(guard_items))]
        for name, expected in guard_items:
            args += [name, expected]
        args += [str(len(allowed)), *allowed, str(len(written))]
        for name, value in written.items():
            args += [name, value]
        args += [event.event_id, event.payload, str(event.maxlen)] if event is not None else ["", "", "0"]
        keys = [keyspace.scan(test_id), bookkeeping, test_id, event.key if event is not None else keyspace.NONE,
                keyspace.QUEUED_WS_PREFIX]
        ok, previous, guard, guard_value = self._script(keys=keys, args=args)
        return Move(bool(ok), str(previous), str(guard), str(guard_value))


class ScanStore:
    """Scan records (``ScanRecord``), their indexes and per-status sets; key names in ``tasks.keyspace``."""

    def __init__(self, client: redis.Redis, *, retention_seconds: int = 30 * 24 * 3600) -> None:
        self.redis = client
        self.retention_seconds = retention_seconds
        self.cas = CompareAndSet(client)
        self._create = client.register_script(_CREATE_LUA)

    @staticmethod
    def key(test_id: str) -> str:
        return keyspace.scan(test_id)

    # -- writing -----------------------------------------------------------------------------
    def create(self, record: ScanRecord, *, event: StreamAppend | None = None,
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
        test_id = record.test_id
        args: list[Any] = ["" if queue_cap is None else queue_cap, repr(time.time()), test_id, record.status,
                              *((event.event_id, event.payload, event.maxlen) if event is not None else ("", "", 0)),
                              task.payload if task is not None else "",
                              *(key_check.args if key_check is not None else ("", "", "", ""))]
        for name, value in record.to_fields().items():
            args += [name, value]
        keys = [self.key(test_id), keyspace.ALL_INDEX, keyspace.workspace_index(record.workspace_id),
                keyspace.status_set(record.status), keyspace.queued_in_workspace(record.workspace_id),
                event.key if event is not None else keyspace.NONE, task.queue if task is not None else keyspace.NONE,
                *(key_check.keys if key_check is not None else (keyspace.NONE, keyspace.NONE))]
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
        pipe.zrem(keyspace.ALL_INDEX, test_id)
        pipe.zrem(keyspace.workspace_index(workspace_id), test_id)
        for status in STATUSES:
            pipe.srem(keyspace.status_set(status), test_id)
        pipe.srem(keyspace.queued_in_workspace(workspace_id), test_id)
        pipe.execute()

    def update(self, test_id: str, **fields: object) -> None:
        if fields:
            mapping: dict[Any, Any] = fields_of(fields)
            self.redis.hset(self.key(test_id), mapping=mapping)

    def transition(self, test_id: str, new_status: ScanStatus, *, allowed_from: Iterable[ScanStatus] | None = None,
                   event: StreamAppend | None = None, **fields: object) -> TransitionResult:
        """Move a scan to ``new_status`` if its current status allows it; set ``fields`` with it.

        ``event`` is appended to the scan's stream in the same atomic step, so a reader never sees
        a finished record without its ``scan_complete`` event, nor the reverse.
        """
        if allowed_from is None:
            allowed_from = [s for s, nxt in TRANSITIONS.items() if new_status in nxt]
        move = self.cas(test_id, "status", new_status, allowed=allowed_from, values=fields, event=event)
        result = TransitionResult(move.ok, ScanStatus(move.previous) if move.previous else None)
        if result.ok and event is not None:
            metrics.EVENTS_APPENDED.labels(type=json.loads(event.payload).get("type", "unknown")).inc()
        if result.ok and new_status in TERMINAL:
            self.redis.expire(self.key(test_id), self.retention_seconds)
        return result

    # -- reading -----------------------------------------------------------------------------
    def get(self, test_id: str) -> ScanRecord | None:
        raw: Mapping[str, str] = self.redis.hgetall(self.key(test_id))  # type: ignore[assignment]
        return ScanRecord.from_fields(raw) if raw else None

    def get_fields(self, test_id: str, *names: str) -> dict[str, Any]:
        """Some fields of a record (None for each one that is not set), without reading the rest."""
        fields_of(dict.fromkeys(names))  # only names of the record's fields
        values: list[str | None] = self.redis.hmget(self.key(test_id), list(names))  # type: ignore[assignment]
        return decode_fields(names, values)

    def status(self, test_id: str) -> ScanStatus | None:
        raw = self.get_fields(test_id, "status")["status"]
        return ScanStatus(raw) if raw is not None else None

    def exists(self, test_id: str) -> bool:
        return bool(self.redis.exists(self.key(test_id)))

    def list(self, *, workspace_id: str | None = None, status: str | None = None,
             component_id: str | None = None, cursor: str | None = None,
             limit: int = 50, workspaces: Iterable[str] | None = None) -> tuple[list[ScanRecord], str | None]:
        """Newest first. Returns one page and the cursor of the next page (None at the end)."""
        index = keyspace.workspace_index(workspace_id) if workspace_id else keyspace.ALL_INDEX
        only = frozenset(workspaces) if workspaces is not None else None
        max_score: str = "+inf"
        after_id: str | None = None
        if cursor:
            score, after_id = decode_cursor(cursor)
            max_score = repr(score)
        page: list[ScanRecord] = []
        batch = max(limit * 2, 50)
        offset = 0
        while len(page) < limit:
            members: list[tuple[str, float]] = self.redis.zrevrangebyscore(  # type: ignore[assignment]
                index, max_score, "-inf", start=offset, num=batch, withscores=True)
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
                if status and record.status != status:
                    continue
                if component_id and record.component_id != component_id:
                    continue
                if only is not None and record.workspace_id not in only:
                    continue
                page.append(record)
                if len(page) == limit:
                    return page, encode_cursor(score, test_id)
        return page, None

    def counts_by_status(self) -> dict[ScanStatus, int]:
        pipe = self.redis.pipeline(transaction=False)
        for status in STATUSES:
            pipe.scard(keyspace.status_set(status))
        return dict(zip(STATUSES, (int(n) for n in pipe.execute()), strict=True))

    def queued_in_workspace(self, workspace_id: str) -> int:
        """How many scans of one workspace are QUEUED (one set per workspace, kept by create and
        transition, so the per-workspace cap costs one command however long the queue is)."""
        return int(self.redis.scard(keyspace.queued_in_workspace(workspace_id)))

    def ids_with_status(self, status: ScanStatus) -> set[str]:
        members: set[str] = self.redis.smembers(keyspace.status_set(status))  # type: ignore[assignment]
        return set(members)
