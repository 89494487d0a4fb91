"""WS /v1/security-scans/{test_id}/stream: replay the stored events, tail new ones, then close."""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import current_app, request
from flask_sock import Sock

from tasks.events import InvalidEventId, check_event_id
from tasks.ids import is_test_id

log = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_NOT_FOUND = 4404
CLOSE_BAD_REQUEST = 4400


def register(sock: Sock) -> None:
    @sock.route("/v1/security-scans/<test_id>/stream")
    def stream(ws: Any, test_id: str) -> None:
        certus = current_app.extensions["certus"]
        svc = certus.scans
        if not is_test_id(test_id) or not svc.store.exists(test_id):
            ws.close(CLOSE_NOT_FOUND, "unknown scan")
            return
        try:
            after = check_event_id(request.args.get("after", "0-0"))
        except InvalidEventId as exc:
            ws.close(CLOSE_BAD_REQUEST, str(exc)[:120])
            return
        with certus.presence.watching():
            for event in svc.events.follow(test_id, after, stop=lambda: not ws.connected,
                                           is_finished=lambda: svc.is_finished(test_id),
                                           upload_active=lambda: certus.uploads.uploads.in_flight(test_id)):
                ws.send(json.dumps(event, separators=(",", ":")))
        if ws.connected:
            ws.close(CLOSE_NORMAL, "scan complete")
