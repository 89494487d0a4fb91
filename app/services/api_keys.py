"""Managing API keys for admins (the same store as ``python -m app.keys``).

A caller reaches only keys within its own workspaces: it creates keys for workspaces it holds
(``*`` only when it holds ``*``), lists and revokes only keys whose workspaces it holds. A key
outside its reach is not listed and, like an unknown id, cannot be revoked (not found).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from app.services.access import require, within
from app.services.errors import Conflict, Forbidden, Invalid, NotFound
from tasks.api_keys import InvalidKeySpec, KeyStore, Principal

log = logging.getLogger(__name__)

_KEY_ID = re.compile(r"[0-9a-f]{12}")


def _info(meta: dict[str, Any]) -> dict[str, Any]:
    return {"key_id": meta["key_id"], "role": meta["role"], "workspaces": list(meta["workspaces"]),
            "name": meta.get("name", ""), "created_at": meta.get("created_at")}


class KeyService:
    def __init__(self, store: KeyStore) -> None:
        self.store = store

    def create(self, principal: Principal | None, role: str, workspaces: list[str], name: str) -> dict[str, Any]:
        """A new key (shown once, in this answer) for workspaces the caller holds."""
        caller = require(principal)
        if not within(caller, workspaces):
            log.warning("API key creation for workspaces %s refused to key %s (holds %s)",
                        ",".join(sorted(set(workspaces))), caller.key_id, ",".join(sorted(caller.workspaces)),
                        extra={"audit": "key_create_refused", "by": caller.key_id})
            raise Forbidden("key_scope_exceeded",
                            "a key can only create keys for workspaces it holds itself (and for * only if it holds *)")
        try:
            plain, created = self.store.create(role, workspaces, name=name)
        except InvalidKeySpec as exc:  # the schema checks the same; the store has the last word
            raise Invalid("validation_error", str(exc)) from exc
        log.warning("API key %s created (role %s, workspaces %s) by key %s", created.key_id, created.role,
                    ",".join(sorted(created.workspaces)), caller.key_id,
                    extra={"audit": "key_created", "key_id": created.key_id, "by": caller.key_id})
        return {"key": plain, "key_id": created.key_id, "role": created.role,
                "workspaces": sorted(created.workspaces), "name": created.name}

    def list(self, principal: Principal | None) -> dict[str, Any]:
        """Every key whose workspaces the caller holds, oldest first; never the keys themselves."""
        caller = require(principal)
        return {"items": [_info(meta) for meta in self.store.list() if within(caller, meta["workspaces"])]}

    def revoke(self, principal: Principal | None, key_id: str) -> None:
        """Revoke a key within the caller's reach; never the caller's own."""
        caller = require(principal)
        if caller.key_id == key_id:
            raise Conflict("own_key", "a key cannot revoke itself; revoke it with another admin key")
        if not _KEY_ID.fullmatch(key_id) or not self._reachable(caller, key_id) or not self.store.revoke(key_id):
            raise NotFound("key_not_found", "no key has that id")
        log.warning("API key %s revoked by key %s", key_id, caller.key_id,
                    extra={"audit": "key_revoked", "key_id": key_id, "by": caller.key_id})

    def _reachable(self, caller: Principal, key_id: str) -> bool:
        """Whether the key exists and lies within the caller's workspaces (keys never change theirs)."""
        meta = next((m for m in self.store.list() if m["key_id"] == key_id), None)
        return meta is not None and within(caller, meta["workspaces"])
