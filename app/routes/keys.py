"""API keys over HTTP, for admins: ``/v1/keys`` (create, list) and ``/v1/keys/{key_id}`` (revoke).
The same store as ``python -m app.keys``; a key is shown once, when it is created."""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from app.auth import current_principal
from app.errors import APIError
from app.routes.scans import json_body
from app.schemas.keys import KeyCreateSchema
from tasks.keys import KeyError_, KeyStore

bp = Blueprint("keys", __name__, url_prefix="/v1/keys")
log = logging.getLogger(__name__)

_create_schema = KeyCreateSchema()
_KEY_ID = re.compile(r"[0-9a-f]{12}")


def _store() -> KeyStore:
    return current_app.extensions["certus"].keys  # type: ignore[no-any-return,unused-ignore]


def _info(meta: dict[str, Any]) -> dict[str, Any]:
    return {"key_id": meta["key_id"], "role": meta["role"], "workspaces": list(meta["workspaces"]),
            "name": meta.get("name", ""), "created_at": meta.get("created_at")}


@bp.post("")
def create() -> tuple[Response, int]:
    """Create an API key.
    ---
    post:
      summary: Create an API key (admin)
      description: The key itself is in this answer only; the service stores its SHA-256.
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
    """
    data = _create_schema.load(json_body())
    try:
        plain, principal = _store().create(data["role"], data["workspaces"], name=data["name"])
    except KeyError_ as exc:  # the schema checks the same; the store has the last word
        raise APIError(422, "validation_error", str(exc)) from exc
    log.warning("API key %s created (role %s, workspaces %s) by key %s", principal.key_id, principal.role,
                ",".join(sorted(principal.workspaces)), _caller(),
                extra={"audit": "key_created", "key_id": principal.key_id, "by": _caller()})
    return jsonify({"key": plain, "key_id": principal.key_id, "role": principal.role,
                    "workspaces": sorted(principal.workspaces), "name": principal.name}), 201


@bp.get("")
def list_keys() -> Response:
    """List API keys.
    ---
    get:
      summary: List API keys (admin); never the keys themselves
      tags: [auth]
      responses:
        200:
          description: Every key, oldest first.
          content:
            application/json:
              schema: KeyListSchema
    """
    return jsonify({"items": [_info(meta) for meta in _store().list()]})


@bp.delete("/<key_id>")
def revoke(key_id: str) -> tuple[str, int]:
    """Revoke an API key.
    ---
    delete:
      summary: Revoke an API key (admin)
      description: The key stops working at once on every replica. The key a request is made with
        cannot revoke itself (409 `own_key`), so an admin cannot lock everyone out by mistake.
      tags: [auth]
      responses:
        204:
          description: Revoked.
        409: Conflict
    """
    principal = current_principal()
    if principal is not None and principal.key_id == key_id:
        raise APIError(409, "own_key", "a key cannot revoke itself; revoke it with another admin key")
    if not _KEY_ID.fullmatch(key_id) or not _store().revoke(key_id):
        raise APIError(404, "key_not_found", "no key has that id")
    log.warning("API key %s revoked by key %s", key_id, _caller(),
                extra={"audit": "key_revoked", "key_id": key_id, "by": _caller()})
    return "", 204


def _caller() -> str:
    principal = current_principal()
    return principal.key_id if principal is not None else "-"
