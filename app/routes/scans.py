"""HTTP endpoints under /v1/security-scans."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import UnsupportedMediaType

from app.auth import caller, key_confirmed
from app.schemas.scans import EventsQuerySchema, ScanListQuerySchema, ScanRequestSchema
from app.services.errors import Malformed
from app.services.scans import ScanService, public_view

bp = Blueprint("scans", __name__, url_prefix="/v1/security-scans")

_submit_schema = ScanRequestSchema()
_list_schema = ScanListQuerySchema()
_events_schema = EventsQuerySchema()


def service() -> ScanService:
    scans: ScanService = current_app.extensions["certus"].scans
    return scans


def json_body() -> dict[str, Any]:
    if not request.is_json:
        raise UnsupportedMediaType("send a JSON body with Content-Type: application/json")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise Malformed("invalid_json", "the body must be a JSON object")
    return body


@bp.post("")
def submit() -> tuple[Response, int, dict[str, str]]:
    """Submit a scan.
    ---
    post:
      summary: Submit a scan
      description: Validates the request, stores the scan (QUEUED), then queues it. 202 with a Location header.
      tags: [scans]
      requestBody:
        required: true
        content:
          application/json:
            schema: ScanRequestSchema
            example:
              workspace_id: acme
              component_id: billing
              assessment_id: release-1.4
              git_url: https://git.example.com/acme/billing.git
              branch: main
              profile: light
      responses:
        202:
          description: Accepted and queued.
          headers:
            Location:
              description: the scan's status URL
              schema: {type: string}
          content:
            application/json:
              schema: ScanCreatedSchema
    """
    with key_confirmed() as key:  # the key may be confirmed by the write itself (app.auth)
        created = service().submit(caller(), _submit_schema.load(json_body()), key)
    return jsonify(created), 202, {"Location": created["status_url"]}


@bp.get("")
def list_scans() -> Response:
    """List scans.
    ---
    get:
      summary: List scans, newest first
      description: Filter by workspace, component and status; page with `next_cursor`.
      tags: [scans]
      parameters:
        - in: query
          schema: ScanListQuerySchema
      responses:
        200:
          description: One page of scans.
          content:
            application/json:
              schema: ScanListSchema
    """
    query = _list_schema.load(request.args.to_dict())
    return jsonify(service().list(caller(), query))


@bp.get("/<test_id>")
def get_scan(test_id: str) -> Response:
    """A scan's status.
    ---
    get:
      summary: A scan's status, phases, findings summary, policy result, artifacts and upload status
      tags: [scans]
      responses:
        200:
          description: The scan record.
          content:
            application/json:
              schema: ScanRecordSchema
    """
    return jsonify(public_view(service().get(caller(), test_id)))


@bp.post("/<test_id>/cancel")
def cancel_scan(test_id: str) -> tuple[Response, int]:
    """Cancel a scan.
    ---
    post:
      summary: Cancel a queued or running scan
      description: A queued scan is cancelled at once; a running one is flagged and its worker stops it.
      tags: [scans]
      responses:
        202:
          description: Cancelled (status CANCELLED) or cancel requested (status RUNNING).
          content:
            application/json:
              schema: CancelSchema
              example: {test_id: test_3f9c2a1b7d4e, status: CANCELLED, cancel_requested: true}
        409: Conflict
    """
    return jsonify(service().cancel(caller(), test_id)), 202


@bp.get("/<test_id>/events")
def list_events(test_id: str) -> Response:
    """A scan's events without WebSockets.
    ---
    get:
      summary: The scan's live-log events after an event id
      description: The same events the WebSocket stream sends. Poll with `after=next_after` until `complete`.
      tags: [scans]
      parameters:
        - in: query
          schema: EventsQuerySchema
      responses:
        200:
          description: Up to `limit` events.
          content:
            application/json:
              schema: EventsPageSchema
              example:
                events:
                  - {id: 1767607200000-0, type: phase, timestamp: 1767607200.0, phase: queued,
                     message: scan accepted and queued}
                next_after: 1767607200000-0
                complete: false
    """
    svc = service()
    scan = svc.get(caller(), test_id)
    query = _events_schema.load(request.args.to_dict())
    return jsonify(svc.events_page(scan, query["after"], query["limit"]))
