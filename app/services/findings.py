"""The findings endpoints' behaviour: a component's findings, one finding and its history, triage,
and the comparison of two scans, over the findings store (``tasks.findings_store``).

Every method takes the caller (a ``Principal``) and fails closed: no caller is refused, a finding
or scan of a workspace the caller does not hold is not found (like one that does not exist), and
triage needs the ``triage`` permission here as well as at the edge. The store's refusals
(``FindingsError``) become the service's errors by their code (``KIND``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from app.services.access import check_workspace, may_see, require
from app.services.errors import Conflict, Forbidden, Invalid, NotFound, ServiceError, Unavailable
from tasks.api_keys import Principal
from tasks.errors import ErrorCode
from tasks.findings import (
    DiffEntry,
    DiffResult,
    FindingFilter,
    FindingsError,
    FindingState,
    FindingView,
    ScanRef,
    TriageEventView,
)
from tasks.findings_store import FindingsStore
from tasks.ids import is_test_id
from tasks.states import Severity

# The kind of service error each code of the store is answered as (docs/errors.md).
KIND: dict[ErrorCode, type[ServiceError]] = {
    ErrorCode.FINDING_NOT_FOUND: NotFound,
    ErrorCode.SCAN_NOT_FOUND: NotFound,
    ErrorCode.TRIAGE_INVALID: Invalid,
    ErrorCode.SCANS_NOT_COMPARABLE: Invalid,
    ErrorCode.BASELINE_NOT_FOUND: Invalid,
    ErrorCode.INVALID_CURSOR: Invalid,
    ErrorCode.VALIDATION_ERROR: Invalid,
    ErrorCode.SCAN_NOT_SUCCEEDED: Conflict,
    ErrorCode.DATABASE_UNAVAILABLE: Unavailable,
}
_FIELD = {ErrorCode.INVALID_CURSOR: "cursor", ErrorCode.VALIDATION_ERROR: "limit"}
MAX_ID = 2**63 - 1  # a finding id is a signed 64-bit integer


@contextmanager
def refusals() -> Iterator[None]:
    """The store's refusals as the service's errors."""
    try:
        yield
    except FindingsError as exc:
        kind = KIND.get(exc.code)
        if kind is None:
            raise
        field = _FIELD.get(exc.code)
        raise kind(exc.code, exc.message, fields={field: [exc.message]} if field else None,
                   retry_after=5 if kind is Unavailable else None) from exc


def iso(value: datetime | None) -> str | None:
    """A time as the service writes them: ISO 8601 in UTC, ``Z``."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def actor_of(principal: Principal) -> str:
    """Who a triage is recorded as: the key's name and id."""
    return f"{principal.name} (key {principal.key_id})" if principal.name.strip() else f"key {principal.key_id}"


def finding_view(view: FindingView) -> dict[str, Any]:
    return {
        "id": view.id, "workspace_id": view.workspace_id, "component_id": view.component_id,
        "fingerprint": view.fingerprint, "tool": view.tool, "rule_id": view.rule_id,
        "sources": [{"tool": s.tool, "rule_id": s.rule_id} for s in view.sources],
        "severity": str(view.severity), "path": view.path, "line": view.line, "message": view.message,
        "cwe": view.cwe, "state": str(view.state), "effective_state": str(view.effective_state),
        "expired": view.expired, "triage_reason": view.triage_reason, "triage_owner": view.triage_owner,
        "expires_at": iso(view.expires_at), "triaged_by": view.triaged_by, "triaged_at": iso(view.triaged_at),
        "first_seen_test_id": view.first_seen_test_id, "last_seen_test_id": view.last_seen_test_id,
    }


def event_view(event: TriageEventView) -> dict[str, Any]:
    return {"id": event.id, "actor": event.actor, "at": iso(event.at), "from_state": str(event.from_state),
            "to_state": str(event.to_state), "reason": event.reason, "owner": event.owner,
            "expires_at": iso(event.expires_at), "scan_test_id": event.scan_test_id}


def entry_view(entry: DiffEntry) -> dict[str, Any]:
    return {"finding_id": entry.finding_id, "fingerprint": entry.fingerprint, "tool": entry.tool,
            "rule_id": entry.rule_id, "severity": str(entry.severity), "path": entry.path, "line": entry.line,
            "message": entry.message, "cwe": entry.cwe}


def scan_view(ref: ScanRef) -> dict[str, Any]:
    return {"test_id": ref.test_id, "branch": ref.branch, "commit": ref.commit, "status": str(ref.status),
            "created_at": iso(ref.created_at), "finding_count": ref.finding_count}


def _names(text: str | None) -> list[str]:
    return [part for part in (text or "").split(",") if part]


def _not_found(finding_id: int) -> NotFound:
    return NotFound("finding_not_found", f"no finding {finding_id}")


class FindingsService:
    def __init__(self, store: FindingsStore) -> None:
        self.store = store

    # -- reading -----------------------------------------------------------------------------
    def list(self, principal: Principal | None, query: dict[str, Any]) -> dict[str, Any]:
        """One page of a component's findings (of a workspace the caller holds), filtered."""
        check_workspace(principal, query["workspace_id"])
        filters = FindingFilter(
            states=frozenset(FindingState(s) for s in _names(query.get("state"))),
            severities=frozenset(Severity(s) for s in _names(query.get("severity"))),
            tool=query.get("tool"), rule=query.get("rule"), path_prefix=query.get("path"),
            new_since=query.get("new_since"), text=query.get("q"))
        with refusals():
            page = self.store.list_findings(query["workspace_id"], query["component_id"], filters,
                                            cursor=query.get("cursor"), limit=query.get("limit", 50))
        return {"workspace_id": query["workspace_id"], "component_id": query["component_id"],
                "items": [finding_view(v) for v in page.items], "next_cursor": page.next_cursor}

    def _finding(self, caller: Principal, finding_id: int) -> FindingView:
        """The finding, if the caller may see it: another workspace's is not found."""
        if not 1 <= finding_id <= MAX_ID:
            raise _not_found(finding_id)
        with refusals():
            view = self.store.get(finding_id)
        if not may_see(caller, view.workspace_id):
            raise _not_found(finding_id)
        return view

    def get(self, principal: Principal | None, finding_id: int) -> dict[str, Any]:
        return finding_view(self._finding(require(principal), finding_id))

    def history(self, principal: Principal | None, finding_id: int) -> dict[str, Any]:
        """Every change of the finding's state, oldest first."""
        view = self._finding(require(principal), finding_id)
        with refusals():
            events = self.store.history(finding_id, workspace_id=view.workspace_id)
        return {"finding_id": finding_id, "items": [event_view(e) for e in events]}

    # -- triage ------------------------------------------------------------------------------
    def triage(self, principal: Principal | None, finding_id: int, data: dict[str, Any]) -> dict[str, Any]:
        """Set the finding's state (``open``, ``false_positive``, ``accepted_risk``) as the caller,
        with its history row (``tasks.findings.check_triage`` has the rules)."""
        caller = require(principal)
        if not caller.can("triage"):
            raise Forbidden("forbidden", f"the key's role ({caller.role}) may not triage")
        view = self._finding(caller, finding_id)
        with refusals():
            updated = self.store.triage(finding_id, data["state"], actor=actor_of(caller), reason=data.get("reason"),
                                        owner=data.get("owner"), expires_at=data.get("expires_at"),
                                        workspace_id=view.workspace_id)
        return finding_view(updated)

    # -- comparing ---------------------------------------------------------------------------
    def _scan(self, caller: Principal, test_id: str) -> ScanRef:
        """A recorded scan the caller may see; any other is not found."""
        with refusals():
            ref = self.store.scan(test_id) if is_test_id(test_id) else None
        if ref is None or not may_see(caller, ref.workspace_id):
            raise NotFound("scan_not_found", f"no recorded findings of a scan {test_id} (a scan's findings are "
                                             "recorded when it ends)")
        return ref

    def diff(self, principal: Principal | None, test_id: str, against: str | None = None, *,
             include_unchanged: bool = False) -> dict[str, Any]:
        """What scan ``test_id`` found compared with scan ``against`` (by default the baseline it
        was compared with when it was recorded): new, updated, fixed and unchanged findings, with
        their counts by severity. Both must be scans of one component the caller may see."""
        caller = require(principal)
        head = self._scan(caller, test_id)
        if against is None:
            if head.baseline_test_id is None:
                message = "the scan was recorded without a baseline; name a scan to compare with"
                raise Invalid("validation_error", message, fields={"against": [message]})
            against = head.baseline_test_id
        base = self._scan(caller, against)
        with refusals():
            result: DiffResult = self.store.diff(base.test_id, head.test_id)
        counts = result.counts()
        answer: dict[str, Any] = {
            "test_id": head.test_id, "against": base.test_id, "workspace_id": head.workspace_id,
            "component_id": head.component_id, "head": scan_view(head), "base": scan_view(base),
            "counts": counts, "totals": {name: sum(by.values()) for name, by in counts.items()},
            "new": [entry_view(e) for e in result.new], "updated": [entry_view(e) for e in result.updated],
            "fixed": [entry_view(e) for e in result.fixed]}
        if include_unchanged:
            answer["unchanged"] = [entry_view(e) for e in result.unchanged]
        return answer
