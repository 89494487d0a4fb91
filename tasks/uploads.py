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

from tasks import keyspace
from tasks.clock import utcnow_iso
from tasks.events import EventLog
from tasks.records import UPLOAD_FIELDS, UploadRecord, encode
from tasks.states import UPLOAD_FINAL, UPLOAD_IN_FLIGHT, ScanStatus, UploadStatus, UploadTier
from tasks.store import ScanStore

# The names the rest of the service imports from here.
PENDING, PERMITTED, UPLOADED, DENIED, UPLOAD_FAILED = tuple(UploadStatus)
IN_FLIGHT = UPLOAD_IN_FLIGHT
FINAL = UPLOAD_FINAL
TIERS: tuple[str, ...] = tuple(UploadTier)


@dataclass(frozen=True)
class UploadMove:
    ok: bool
    previous: str  # the upload status before ('' for none), or 'scan:<STATUS>', 'stale:<s>', 'missing'


def new_request_id() -> str:
    return "upr_" + secrets.token_hex(8)


class UploadStore:
    def __init__(self, store: ScanStore, events: EventLog) -> None:
        self.store = store
        self.events = events
        self.redis: redis.Redis = store.redis

    def move(self, test_id: str, new_status: UploadStatus, *, allowed_from: list[str], request_id: str = "",
             scan_status: str = "", **fields: object) -> UploadMove:
        """Move the upload of a scan (the compare-and-set of ``tasks.store``, on ``upload_status``),
        only while the scan is ``scan_status`` and the upload belongs to ``request_id`` when given."""
        guards = {}
        if scan_status:
            guards["status"] = scan_status
        if request_id:
            guards["upload_request_id"] = request_id
        move = self.store.cas(test_id, "upload_status", new_status, allowed=allowed_from, guards=guards,
                              values=fields)
        if move.guard == "missing":
            return UploadMove(False, "missing")
        if move.guard == "status":
            return UploadMove(False, f"scan:{move.guard_value}")
        if move.guard == "upload_request_id":
            return UploadMove(False, f"stale:{move.previous}")
        return UploadMove(move.ok, move.previous)

    def state(self, test_id: str) -> UploadRecord:
        return UploadRecord.from_values(self.store.get_fields(test_id, *UPLOAD_FIELDS))

    def in_flight(self, test_id: str) -> bool:
        return self.state(test_id).in_flight

    def open_request(self, test_id: str, tier: str, signer: str | None) -> tuple[bool, UploadMove, str]:
        """Start a new upload unless one is in flight. Returns (created, move, request_id)."""
        request_id = new_request_id()
        move = self.move(test_id, PENDING, allowed_from=["", UPLOADED, DENIED, UPLOAD_FAILED],
                         scan_status=ScanStatus.SUCCEEDED, upload_request_id=request_id,
                         upload_request={"tier": tier, "signer": signer, "requested_at": utcnow_iso()},
                         upload_permission_id=None, verification_proof=None, remote_artifacts=None,
                         upload_reason=None)
        return move.ok, move, request_id

    def emit(self, test_id: str, status: str, detail: str, **fields: Any) -> str:
        return self.events.append(test_id, "upload", upload_status=status, detail=detail, **fields)

    # -- per-destination progress --------------------------------------------------------------
    def mark_done(self, test_id: str, request_id: str, destination: str,
                  result: dict[str, Any]) -> dict[str, Any]:
        """Record one destination's result; returns every destination's result so far."""
        key = keyspace.upload_done(test_id, request_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, destination, encode(result))
        pipe.expire(key, self.store.retention_seconds)
        pipe.hgetall(key)
        raw: dict[str, str] = pipe.execute()[-1]
        return {k: json.loads(v) for k, v in raw.items()}
