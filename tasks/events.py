"""Scan events in one capped Redis Stream per scan.

An entry holds one field, ``e``: the event as JSON without its id. A frame sent to a client is the
decoded event with the stream id added (``{"id": ..., "type": ..., "timestamp": ..., ...}``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis

from tasks import keyspace, metrics

EVENT_TYPES = frozenset({"phase", "tool_start", "log", "tool_complete", "error", "scan_complete", "upload"})
FINAL_UPLOAD_STATUSES = frozenset({"uploaded", "denied", "upload_failed"})
# encode_event writes the type first, so a stored event's kind shows in its first bytes.
_SCAN_COMPLETE_PREFIX = '{"type":"scan_complete"'
_UPLOAD_PREFIX = '{"type":"upload"'
STREAM_ID_RE = re.compile(r"^\d{1,20}-\d{1,20}\Z")


class InvalidEventId(ValueError):
    pass


def stream_key(test_id: str) -> str:
    return keyspace.events(test_id)


def check_event_id(value: str) -> str:
    """Validate a client-supplied ``after`` id; ``0`` and ``0-0`` mean from the start."""
    if value in ("0", "0-0"):
        return "0-0"
    if not STREAM_ID_RE.match(value):
        raise InvalidEventId("after must be a stream id such as 1700000000000-0")
    return value


def encode_event(event_type: str, fields: dict[str, Any], timestamp: float | None = None) -> str:
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    body = {"type": event_type, "timestamp": time.time() if timestamp is None else timestamp, **fields}
    return json.dumps(body, separators=(",", ":"))


def decode_entry(entry_id: str, data: dict[str, str]) -> dict[str, Any]:
    event: dict[str, Any] = {"id": entry_id}
    event.update(json.loads(data["e"]))
    return event


def _id_tuple(entry_id: str) -> tuple[int, int]:
    ms, seq = entry_id.split("-")
    return int(ms), int(seq)


class EventLog:
    def __init__(self, client: redis.Redis, *, maxlen: int = 50000, block_ms: int = 1000,
                 retention_seconds: int | None = None) -> None:
        self.redis = client
        self.maxlen = maxlen
        self.block_ms = block_ms
        self.retention_seconds = retention_seconds

    # -- writing -----------------------------------------------------------------------------
    def append(self, test_id: str, event_type: str, *, event_id: str = "*", **fields: Any) -> str:
        payload = encode_event(event_type, fields)
        entry_id = self.redis.xadd(stream_key(test_id), {"e": payload}, id=event_id,
                                   maxlen=self.maxlen, approximate=True)
        metrics.EVENTS_APPENDED.labels(type=event_type).inc()
        return str(entry_id)

    def append_many(self, test_id: str, events: list[tuple[str, dict[str, Any]]]) -> list[str]:
        """Append several events in one round trip (tool output comes in bursts)."""
        pipe = self.redis.pipeline(transaction=False)
        for event_type, fields in events:
            pipe.xadd(stream_key(test_id), {"e": encode_event(event_type, fields)},
                      maxlen=self.maxlen, approximate=True)
        ids = [str(i) for i in pipe.execute()]
        for event_type, _ in events:
            metrics.EVENTS_APPENDED.labels(type=event_type).inc()
        return ids

    def next_id(self, test_id: str) -> str:
        """An id above every entry so far, to name an event before it is appended.

        Only the worker that holds a scan's lease appends while the scan runs, so the id stays
        free until that worker uses it.
        """
        now_ms = int(time.time() * 1000)
        info = self.redis.xinfo_stream(stream_key(test_id)) if self.redis.exists(stream_key(test_id)) else None
        last = info["last-generated-id"] if info else "0-0"
        last_ms, last_seq = _id_tuple(str(last))
        if now_ms > last_ms:
            return f"{now_ms}-0"
        return f"{last_ms}-{last_seq + 1}"

    def expire(self, test_id: str) -> None:
        if self.retention_seconds:
            self.redis.expire(stream_key(test_id), self.retention_seconds)

    # -- reading -----------------------------------------------------------------------------
    def range(self, test_id: str, after: str = "0-0", limit: int = 1000) -> list[dict[str, Any]]:
        entries: Any = self.redis.xrange(stream_key(test_id), min=f"({after}" if after != "0-0" else "-",
                                    count=limit)
        return [decode_entry(i, d) for i, d in entries]

    def all(self, test_id: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        after = "0-0"
        while True:
            batch = self.range(test_id, after, 5000)
            events.extend(batch)
            if len(batch) < 5000:
                return events
            after = batch[-1]["id"]

    def exists(self, test_id: str) -> bool:
        return bool(self.redis.exists(stream_key(test_id)))

    def follow(self, test_id: str, after: str = "0-0", *,
               stop: Callable[[], bool] | None = None,
               is_finished: Callable[[], bool] | None = None,
               upload_active: Callable[[], bool] | None = None) -> Iterator[dict[str, Any]]:
        """Every event after ``after``, decoded; see ``follow_frames`` for when it ends."""
        for batch in self.follow_frames(test_id, after, stop=stop, is_finished=is_finished,
                                        upload_active=upload_active):
            for frame in batch:
                yield json.loads(frame)

    def follow_frames(self, test_id: str, after: str = "0-0", *,
                      stop: Callable[[], bool] | None = None,
                      is_finished: Callable[[], bool] | None = None,
                      upload_active: Callable[[], bool] | None = None) -> Iterator[list[str]]:
        """Yield every event after ``after`` as ready-to-send JSON text frames, in batches of what
        one read returned, then new ones as they come, until ``scan_complete``.

        Frames are built from the stored text without decoding it (the stored event starts with
        its ``type``), so replaying a long history costs little more than reading it.

        ``stop`` is polled between blocking reads (a client that went away). ``is_finished`` is
        asked when the stream is quiet: a finished scan whose stream expired yields nothing more
        instead of waiting forever.

        A reader that starts past ``scan_complete`` (``after`` = its id) follows the upload
        instead: ``upload`` events until one reports a final status while ``upload_active`` says
        no upload is in flight any more, or until the stream is quiet and no upload is in flight.
        """
        key = stream_key(test_id)
        last = after
        saw_complete = False
        while True:
            if stop is not None and stop():
                return
            reply: Any = self.redis.xread({key: last}, count=2000, block=self.block_ms)
            if not reply:
                if is_finished is None or not is_finished():
                    continue
                # The final event is appended atomically with the terminal status, so once the
                # scan is finished one more read finds it, unless the reader is already past it
                # or the stream has expired: then there is nothing left to wait for.
                reply = self.redis.xread({key: last}, count=2000)
                if not reply:
                    if not saw_complete and upload_active is not None and upload_active():
                        continue
                    return
            batch: list[str] = []
            end = False
            for entry_id, data in reply[0][1]:
                last = entry_id
                stored = data["e"]
                batch.append(f'{{"id":"{entry_id}",{stored[1:]}')
                if stored.startswith(_SCAN_COMPLETE_PREFIX):
                    saw_complete = end = True
                    break
                if (stored.startswith(_UPLOAD_PREFIX) and upload_active is not None
                        and json.loads(stored).get("upload_status") in FINAL_UPLOAD_STATUSES
                        and not upload_active()):
                    end = True
                    break
            yield batch
            if end:
                return
