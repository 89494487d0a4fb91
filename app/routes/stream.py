"""WS /v1/security-scans/{test_id}/stream: replay the stored events, tail new ones, then close."""

from __future__ import annotations

import logging
import struct
import time
from typing import Any

from flask import Blueprint, current_app, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed

from app.auth import caller
from app.services.errors import NotFound
from tasks.events import InvalidEventId, check_event_id

log = logging.getLogger(__name__)
bp = Blueprint("stream", __name__)
_sock = Sock()  # only its route decorator: the route belongs to the blueprint

CLOSE_NORMAL = 1000
CLOSE_NOT_FOUND = 4404
CLOSE_BAD_REQUEST = 4400
CLOSE_TOO_MANY = 4429


def text_frame(text: str) -> bytes:
    """One complete, unmasked text frame as a server sends it (RFC 6455 section 5.2). Uncompressed
    frames stay valid when a compression extension was negotiated (RFC 7692 section 6)."""
    data = text.encode()
    size = len(data)
    if size < 126:
        return bytes((0x81, size)) + data
    if size < 65536:
        return struct.pack("!BBH", 0x81, 126, size) + data
    return struct.pack("!BBQ", 0x81, 127, size) + data


def send_frames(ws: Any, frames: list[str]) -> None:
    """Send text frames; a batch goes out in one socket write (a replay of thousands of events
    would otherwise cost a system call per event), framed here rather than message by message."""
    if len(frames) == 1 or not (hasattr(ws, "ws") and hasattr(ws, "sock")):
        for frame in frames:
            ws.send(frame)
        return
    if not ws.connected:
        raise ConnectionClosed(ws.close_reason, ws.close_message)
    ws.sock.sendall(b"".join(map(text_frame, frames)))


@_sock.route("/v1/security-scans/<test_id>/stream", bp=bp)
def stream(ws: Any, test_id: str) -> None:
    certus = current_app.extensions["certus"]
    svc = certus.scans
    principal = caller()
    try:
        svc.get(principal, test_id)  # unknown, or another workspace's: the same answer
    except NotFound:
        ws.close(CLOSE_NOT_FOUND, "unknown scan")
        return
    try:
        after = check_event_id(request.args.get("after", "0-0"))
    except InvalidEventId as exc:
        ws.close(CLOSE_BAD_REQUEST, str(exc)[:120])
        return
    key_id = principal.key_id
    slots = certus.stream_slots
    conn = slots.take(key_id)
    if conn is None:
        ws.close(CLOSE_TOO_MANY, "too many open streams for this key")
        return
    refreshed = time.monotonic()

    def stop() -> bool:
        nonlocal refreshed
        if time.monotonic() - refreshed > slots.LAPSE_S / 3:
            slots.refresh(key_id, conn)
            refreshed = time.monotonic()
        return not ws.connected

    try:
        with certus.presence.watching():
            for batch in svc.events.follow_frames(
                    test_id, after, stop=stop, is_finished=lambda: svc.is_finished(test_id),
                    upload_active=lambda: certus.uploads.uploads.in_flight(test_id)):
                send_frames(ws, batch)
    finally:
        slots.release(key_id, conn)
    if ws.connected:
        ws.close(CLOSE_NORMAL, "scan complete")
