"""HTTP endpoints under /v1/security-scans."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from app.errors import APIError
from app.schemas.scans import EventsQuerySchema, ScanListQuerySchema, ScanRequestSchema
from app.services.scans import ScanService, public_view
from tasks.events import InvalidEventId, check_event_id

bp = Blueprint("scans", __name__, url_prefix="/v1/security-scans")

_submit_schema = ScanRequestSchema()
_list_schema = ScanListQuerySchema()
_events_schema = EventsQuerySchema()


def service() -> ScanService:
    return current_app.extensions["certus"].scans  # type: ignore[no-any-return,unused-ignore]


def json_body() -> dict[str, Any]:
    if not request.is_json:
        raise APIError(415, "unsupported_media_type", "send a JSON body with Content-Type: application/json")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise APIError(400, "invalid_json", "the body must be a JSON object")
    return body


@bp.post("")
def submit() -> tuple[Response, int, dict[str, str]]:
    data = _submit_schema.load(json_body())
    created = service().submit(data)
    return jsonify(created), 202, {"Location": created["status_url"]}


@bp.get("")
def list_scans() -> Response:
    query = _list_schema.load(request.args.to_dict())
    return jsonify(service().list(query))


@bp.get("/<test_id>")
def get_scan(test_id: str) -> Response:
    return jsonify(public_view(service().get(test_id)))


@bp.post("/<test_id>/cancel")
def cancel_scan(test_id: str) -> tuple[Response, int]:
    return jsonify(service().cancel(test_id)), 202


@bp.get("/<test_id>/events")
def list_events(test_id: str) -> Response:
    svc = service()
    svc.get(test_id)
    query = _events_schema.load(request.args.to_dict())
    try:
        after = check_event_id(query["after"])
    except InvalidEventId as exc:
        raise APIError(422, "invalid_event_id", str(exc), fields={"after": [str(exc)]}) from exc
    events = svc.events.range(test_id, after, query["limit"])
    complete = any(e["type"] == "scan_complete" for e in events)
    next_after = events[-1]["id"] if events else after
    return jsonify({"events": events, "next_after": next_after, "complete": complete})
