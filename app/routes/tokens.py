"""POST /v1/stream-tokens: a short-lived, single-use token for browsers, which cannot set headers
on a WebSocket: ``ws://.../v1/security-scans/{id}/stream?token=...``."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from app.auth import current_principal
from app.errors import APIError

bp = Blueprint("tokens", __name__, url_prefix="/v1")


@bp.post("/stream-tokens")
def issue() -> tuple[Response, int]:
    certus = current_app.extensions["certus"]
    principal = current_principal()
    if principal is None:  # the guard has already refused; never issue without a key
        raise APIError(401, "unauthorized", "send an API key")
    ttl = certus.settings.stream_token_seconds
    token = certus.keys.issue_stream_token(principal, ttl)
    return jsonify({"token": token, "expires_in": ttl, "query_parameter": "token"}), 201
