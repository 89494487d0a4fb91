"""POST /v1/stream-tokens: a short-lived, single-use token for browsers, which cannot set headers
on a WebSocket: ``ws://.../v1/security-scans/{id}/stream?token=...``."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from app.auth import caller

bp = Blueprint("tokens", __name__, url_prefix="/v1")


@bp.post("/stream-tokens")
def issue() -> tuple[Response, int]:
    """Issue a stream token.
    ---
    post:
      summary: A short-lived, single-use token for opening a scan stream from a browser
      description: Use it as `?token=` on `WS /v1/security-scans/{test_id}/stream`; it is bound to the
        key's workspaces and opens nothing else.
      tags: [auth]
      responses:
        201:
          description: The token.
          content:
            application/json:
              schema: StreamTokenSchema
    """
    certus = current_app.extensions["certus"]
    principal = caller()  # never issued without a key
    ttl = certus.settings.stream_token_seconds
    token = certus.keys.issue_stream_token(principal, ttl)
    return jsonify({"token": token, "expires_in": ttl, "query_parameter": "token"}), 201
