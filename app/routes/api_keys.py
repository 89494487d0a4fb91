"""API keys over HTTP, for admins: ``/v1/keys`` (create, list) and ``/v1/keys/{key_id}`` (revoke).
The same store as ``python -m app.keys``; a key is shown once, when it is created.

An admin key reaches only keys within its own workspaces: it creates keys for workspaces it holds
(``*`` only when it holds ``*``), lists and revokes only keys whose workspaces it holds. A key
outside its reach is not listed and, like an unknown id, cannot be revoked (404).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from app.auth import current_principal
from app.errors import APIError
from app.routes.scans import json_body
from app.schemas.api_keys import KeyCreateSchema
from tasks.api_keys import InvalidKeySpec, KeyStore, Principal

bp = Blueprint("keys", __name__, url_prefix="/v1/keys")
log = logging.getLogger(__name__)

_create_schema = KeyCreateSchema()
_KEY_ID = re.compile(r"[0-9a-f]{12}")


def _store() -> KeyStore:
    return current_app.extensions["certus"].keys  # type: ignore[no-any-return,unused-ignore]


def _caller_principal() -> Principal:
    principal = current_principal()
    if principal is None:  # the guard has already refused; never act without a key
        raise APIError(401, "unauthorized", "send an API key")
    return principal


def within(workspaces: Iterable[str], holder: Principal) -> bool:
    """Whether every one of ``workspaces`` is one the holder holds: any for a ``*`` key, otherwise
    only its own (so ``*`` itself only for a ``*`` key)."""
    return holder.all_workspaces or set(workspaces) <= holder.workspaces


def _info(meta: dict[str, Any]) -> dict[str, Any]:
    return {"key_id": meta["key_id"], "role": meta["role"], "workspaces": list(meta["workspaces"]),
            "name": meta.get("name", ""), "created_at": meta.get("created_at")}


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
    caller = _caller_principal()
    if not within(data["workspaces"], caller):
        log.warning("API key creation for workspaces %s refused to key %s (holds %s)",
                    ",".join(sorted(set(data["workspaces"]))), caller.key_id, ",".join(sorted(caller.workspaces)),
                    extra={"audit": "key_create_refused", "by": caller.key_id})
        raise APIError(403, "key_scope_exceeded",
                       "a key can only create keys for workspaces it holds itself (and for * only if it holds *)")
    try:
        plain, principal = _store().create(data["role"], data["workspaces"], name=data["name"])
    except InvalidKeySpec as exc:  # the schema checks the same; the store has the last word
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
          description: Every key whose workspaces the caller holds, oldest first.
          content:
            application/json:
              schema: KeyListSchema
    """
    caller = _caller_principal()
    return jsonify({"items": [_info(meta) for meta in _store().list() if within(meta["workspaces"], caller)]})


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
    caller = _caller_principal()
    if caller.key_id == key_id:
        raise APIError(409, "own_key", "a key cannot revoke itself; revoke it with another admin key")
    if not _KEY_ID.fullmatch(key_id) or not _reachable(key_id, caller) or not _store().revoke(key_id):
        raise APIError(404, "key_not_found", "no key has that id")
    log.warning("API key %s revoked by key %s", key_id, _caller(),
                extra={"audit": "key_revoked", "key_id": key_id, "by": _caller()})
    return "", 204


def _reachable(key_id: str, caller: Principal) -> bool:
    """Whether the key exists and lies within the caller's workspaces (keys never change theirs)."""
    meta = next((m for m in _store().list() if m["key_id"] == key_id), None)
    return meta is not None and within(meta["workspaces"], caller)


def _caller() -> str:
    principal = current_principal()
    return principal.key_id if principal is not None else "-"
