"""Who may see what: every check takes the caller (a ``Principal``) explicitly and fails closed.

No caller sees nothing and may do nothing; nothing here looks at where it is called from (a request,
a thread, a command), so a new caller cannot skip a check by calling from somewhere else.
"""

from __future__ import annotations

from collections.abc import Iterable

from app.services.errors import NotFound, Unauthenticated
from tasks.api_keys import Principal


def require(principal: Principal | None) -> Principal:
    """The caller, or ``Unauthenticated`` when there is none."""
    if principal is None:
        raise Unauthenticated("unauthorized", "send an API key")
    return principal


def may_see(principal: Principal | None, workspace_id: str | None) -> bool:
    """Whether the caller may see the workspace: never without a caller."""
    return principal is not None and principal.sees(workspace_id)


def check_workspace(principal: Principal | None, workspace_id: str) -> Principal:
    """The caller, who must hold the workspace. Not 403: a key must not learn which workspaces exist."""
    caller = require(principal)
    if not may_see(caller, workspace_id):
        raise NotFound("workspace_not_found", "no such workspace")
    return caller


def within(principal: Principal | None, workspaces: Iterable[str]) -> bool:
    """Whether every one of ``workspaces`` is one the caller holds: any for a ``*`` key, otherwise
    only its own (so ``*`` itself only for a ``*`` key). Never without a caller."""
    return principal is not None and (principal.all_workspaces or set(workspaces) <= principal.workspaces)
