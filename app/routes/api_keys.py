"""API keys over HTTP, for admins: ``/v1/keys`` (create, list) and ``/v1/keys/{key_id}`` (revoke).
A key is shown once, when it is created. Who reaches which keys: ``app.services.api_keys``.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from app.auth import caller
from app.routes.scans import json_body
from app.schemas.api_keys import KeyCreateSchema
from app.services.api_keys import KeyService

bp = Blueprint("keys", __name__, url_prefix="/v1/keys")

_create_schema = KeyCreateSchema()


def service() -> KeyService:
    keys: KeyService = current_app.extensions["certus"].api_keys
    return keys


@bp.post("")
def create() -> tuple[Response, int]:
    """Create an API key.
    ---
    post:
      summary: Create an API key (admin)
      description: The key itself is in this answer only; the service stores its SHA-256. A key
        creates keys only for workspaces it holds itself (`*` only when it holds `*`); otherwise
        403 `key_scope_exceeded`.
      tags: [auth]
      requestBody:
        required: true
        content:
          application/json:
            schema: KeyCreateSchema
            example: {role: submitter, workspaces: [acme], name: ci}
      responses:
        201:
          description: The new key, shown once.
          content:
            application/json:
              schema: KeyCreatedSchema
        403: Forbidden
    """
    data = _create_schema.load(json_body())
    return jsonify(service().create(caller(), data["role"], data["workspaces"], data["name"])), 201


@bp.get("")
def list_keys() -> Response:
    """List API keys.
    ---
    get:
      summary: List API keys (admin); never the keys themselves
      tags: [auth]
      responses:
        200:
          description: Every key whose workspaces the caller holds, oldest first.
          content:
            application/json:
              schema: KeyListSchema
    """
    return jsonify(service().list(caller()))


@bp.delete("/<key_id>")
def revoke(key_id: str) -> tuple[str, int]:
    """Revoke an API key.
    ---
    delete:
      summary: Revoke an API key (admin)
      description: The key stops working at once on every replica. The key a request is made with
        cannot revoke itself (409 `own_key`), so an admin cannot lock everyone out by mistake. A key
        whose workspaces the caller does not all hold is answered as an unknown one (404).
      tags: [auth]
      responses:
        204:
          description: Revoked.
        409: Conflict
    """
    service().revoke(caller(), key_id)
    return "", 204
