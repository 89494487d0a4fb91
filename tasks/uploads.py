"""Upload state, shared by the API (which opens a request) and the worker (which moves it on).

The upload of a scan lives in fields of the scan's record (``upload_status``, ``upload_request_id``,
``upload_permission_id``, ``verification_proof``, ``remote_artifacts``, ``upload_reason``,
``upload_request``). Every status change goes through one Lua script that checks the current status
(and the request it belongs to), writes the fields and moves the per-status counter in
``ca:uploads:counts`` in the same atomic step, so /stats never drifts from the records.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

import redis

from tasks.clock import utcnow_iso
from tasks.events import EventLog
from tasks.store import ScanStore

PENDING = "pending"
PERMITTED = "permitted"
UPLOADED = "uploaded"
DENIED = "denied"
UPLOAD_FAILED = "upload_failed"
IN_FLIGHT = frozenset({PENDING, PERMITTED})
FINAL = frozenset({UPLOADED, DENIED, UPLOAD_FAILED})
TIERS = ("basic", "verified")
DESTINATIONS = ("s3", "oci")
COUNTS_KEY = "ca:uploads:counts"

_UPLOAD_LUA = """
local scan = redis.call('HGET', KEYS[1], 'status')
if not scan then return {0, 'missing'} end
scan = cjson.decode(scan)
if ARGV[1] ~= '' and scan ~= ARGV[1] then return {0, 'scan:' .. scan} end
local cur = redis.call('HGET', KEYS[1], 'upload_status')
if cur then cur = cjson.decode(cur) end
if type(cur) ~= 'string' then cur = '' end
if ARGV[2] ~= '' then
  local rid = redis.call('HGET', KEYS[1], 'upload_request_id')
  if rid then rid = cjson.decode(rid) end
  if rid ~= ARGV[2] then return {0, 'stale:' .. cur} end
end
local new = ARGV[3]
local n_allowed = tonumber(ARGV[4])
local allowed = false
for i = 5, 4 + n_allowed do
  if ARGV[i] == cur then allowed = true end
end
if not allowed then return {0, cur} end
local i = 5 + n_allowed
local n_fields = tonumber(ARGV[i])
i = i + 1
for _ = 1, n_fields do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  i = i + 2
end
redis.call('HSET', KEYS[1], 'upload_status', cjson.encode(new))
if cur ~= '' then redis.call('HINCRBY', KEYS[2], cur, -1) end
redis.call('HINCRBY', KEYS[2], new, 1)
return {1, cur}
"""

# Progress of the publish tasks of one request: destination -> result.
_DONE_KEY = "ca:upload:done:{test_id}:{request_id}"


@dataclass(frozen=True)
class UploadMove:
    ok: bool
    previous: str  # the upload status before ('' for none), or 'scan:<STATUS>', 'stale:<s>', 'missing'


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def new_request_id() -> str:
    return "upr_" + secrets.token_hex(8)


class UploadStore:
    def __init__(self, store: ScanStore, events: EventLog) -> None:
        self.store = store
        self.events = events
        self.redis: redis.Redis = store.redis
        self._script = self.redis.register_script(_UPLOAD_LUA)

    def move(self, test_id: str, new_status: str, *, allowed_from: list[str], request_id: str = "",
             scan_status: str = "", **fields: Any) -> UploadMove:
        args: list[str] = [scan_status, request_id, new_status, str(len(allowed_from)), *allowed_from,
                           str(len(fields))]
        for name, value in fields.items():
            args += [name, _dumps(value)]
        ok, previous = self._script(keys=[ScanStore.key(test_id), COUNTS_KEY], args=args)
        return UploadMove(bool(ok), str(previous))

    def state(self, test_id: str) -> dict[str, Any]:
        return self.store.get_fields(test_id, "upload_status", "upload_request_id", "upload_permission_id",
                                     "upload_request", "remote_artifacts", "verification_proof",
                                     "upload_reason")

    def in_flight(self, test_id: str) -> bool:
        return self.state(test_id)["upload_status"] in IN_FLIGHT

    def open_request(self, test_id: str, tier: str, signer: str | None) -> tuple[bool, UploadMove, str]:
        """Start a new upload unless one is in flight. Returns (created, move, request_id)."""
        request_id = new_request_id()
        move = self.move(test_id, PENDING, allowed_from=["", UPLOADED, DENIED, UPLOAD_FAILED],
                         scan_status="SUCCEEDED", upload_request_id=request_id,
                         upload_request={"tier": tier, "signer": signer, "requested_at": utcnow_iso()},
                         upload_permission_id=None, verification_proof=None, remote_artifacts=None,
                         upload_reason=None)
        return move.ok, move, request_id

    def emit(self, test_id: str, status: str, detail: str, **fields: Any) -> str:
        return self.events.append(test_id, "upload", upload_status=status, detail=detail, **fields)

    # -- per-destination progress --------------------------------------------------------------
    def mark_done(self, test_id: str, request_id: str, destination: str, result: dict[str, Any]) -> dict[str, Any]:
        """Record one destination's result; returns every destination's result so far."""
        key = _DONE_KEY.format(test_id=test_id, request_id=request_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, destination, _dumps(result))
        pipe.expire(key, self.store.retention_seconds)
        pipe.hgetall(key)
        raw: Any = pipe.execute()[-1]
        return {k: json.loads(v) for k, v in raw.items()}
