"""The findings store's vocabulary: what a scan hands it, what it answers, and the rules of triage.

Plain dataclasses and functions with no database behind them, so the API, the worker and the CLI
can share them; the store itself is ``tasks.findings_store``.

A *logical finding* is one weakness at one place in a component, identified by its fingerprint
within ``(workspace_id, component_id)``. Each ``FindingInput`` is one tool's report of it; inputs of
one scan that carry the same fingerprint are one logical finding with several sources.

States: ``open``; ``false_positive`` and ``accepted_risk`` (set by triage, with a reason, and for
an accepted risk an owner and an expiry); ``fixed`` (set by a scan of the component's baseline branch
that no longer sees an open finding its baseline saw; a later such scan that sees it again opens it).
A suppressed finding (false positive or accepted risk) whose ``expires_at`` has passed counts as
open again: the *effective* state is computed when it is read, from the store's clock, never stored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from tasks.errors import CodedError, ErrorCode
from tasks.states import SEVERITIES, ScanStatus, Severity

MAX_FINGERPRINT = 128
MAX_TOOL = 64
MAX_RULE = 255
MAX_CWE = 32
MAX_REASON = 4000
MAX_PERSON = 255  # an owner or an actor
MAX_LIMIT = 500


class FindingState(StrEnum):
    OPEN = "open"
    FALSE_POSITIVE = "false_positive"
    ACCEPTED_RISK = "accepted_risk"
    FIXED = "fixed"


# States that take a finding out of the gate (while unexpired).
SUPPRESSED: frozenset[FindingState] = frozenset({FindingState.FALSE_POSITIVE, FindingState.ACCEPTED_RISK})
# States a person may set; ``fixed`` is the scans' to set.
TRIAGE_TARGETS: frozenset[FindingState] = frozenset({FindingState.OPEN, *SUPPRESSED})
# The actor named in the history for changes made by a scan rather than a person.
SCAN_ACTOR = "scan"


class FindingsError(CodedError):
    """A request the findings store refuses (unknown finding or scan, a triage that breaks a rule),
    or a database it cannot reach (``database_unavailable``)."""


@dataclass(frozen=True)
class FindingInput:
    """One tool's report of a finding, as a scan hands it to the store."""

    fingerprint: str
    tool: str
    rule_id: str
    severity: Severity
    path: str | None = None  # relative to the source root, '/' separated
    line: int | None = None
    message: str = ""
    cwe: str | None = None  # e.g. "CWE-78"

    def __post_init__(self) -> None:
        object.__setattr__(self, "severity", Severity(self.severity))
        for name, value, most in (("fingerprint", self.fingerprint, MAX_FINGERPRINT), ("tool", self.tool, MAX_TOOL),
                                  ("rule_id", self.rule_id, MAX_RULE)):
            if not value or len(value) > most:
                raise ValueError(f"{name} must be 1 to {most} characters")
        if self.cwe is not None and len(self.cwe) > MAX_CWE:
            raise ValueError(f"cwe must be at most {MAX_CWE} characters")
        if self.line is not None and self.line < 0:
            raise ValueError("line must not be negative")


@dataclass(frozen=True)
class ScanInfo:
    """The scan whose findings are recorded."""

    test_id: str
    workspace_id: str
    component_id: str
    status: ScanStatus
    created_at: datetime  # aware
    branch: str | None = None
    commit: str | None = None
    # The scan to compare with (a recorded SUCCEEDED scan of the same component), or none.
    baseline_test_id: str | None = None
    # Whether this is a scan of the component's baseline branch: only such a scan, when it
    # SUCCEEDED, marks open findings its baseline saw and it does not as ``fixed``, and opens
    # ``fixed`` findings it sees again.
    on_baseline_branch: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", ScanStatus(self.status))
        if self.created_at.tzinfo is None:
            raise ValueError("created_at must be an aware datetime")


@dataclass(frozen=True)
class ScanRef:
    """A recorded scan."""

    test_id: str
    workspace_id: str
    component_id: str
    branch: str | None
    commit: str | None
    status: ScanStatus
    created_at: datetime
    finding_count: int
    baseline_test_id: str | None = None


@dataclass(frozen=True)
class Source:
    tool: str
    rule_id: str


class DiffEntry(NamedTuple):
    """A finding in a comparison, as the scan that saw it reported it (for a fixed one: the older scan).
    A named tuple: a diff makes thousands of them, and a tuple is built several times faster."""

    finding_id: int
    fingerprint: str
    tool: str
    rule_id: str
    severity: Severity
    path: str
    line: int | None
    message: str
    cwe: str | None


@dataclass(frozen=True)
class DiffResult:
    """What ``head`` has compared with ``base``, by fingerprint: ``new`` (only in head), ``fixed``
    (only in base), ``unchanged`` (in both, same severity) and ``updated`` (in both, the severity
    changed). Each list is in (severity, path, line) order."""

    base_test_id: str | None
    head_test_id: str
    new: tuple[DiffEntry, ...] = ()
    unchanged: tuple[DiffEntry, ...] = ()
    updated: tuple[DiffEntry, ...] = ()
    fixed: tuple[DiffEntry, ...] = ()

    def counts(self) -> dict[str, dict[str, int]]:
        """``{"new": {"critical": n, ...}, "unchanged": ..., "updated": ..., "fixed": ...}``."""
        return {name: severity_counts(e.severity for e in getattr(self, name))
                for name in ("new", "unchanged", "updated", "fixed")}


def severity_counts(severities: Iterable[Severity]) -> dict[str, int]:
    counted = Counter(severities)
    return {str(s): counted.get(s, 0) for s in SEVERITIES}


@dataclass(frozen=True)
class RecordResult:
    """What ``record_scan`` did: the scan, its baseline and the comparison with it (no baseline:
    every finding is new), and the findings whose state the scan changed."""

    scan: ScanRef
    baseline: ScanRef | None
    diff: DiffResult
    marked_fixed: tuple[int, ...] = ()
    reopened: tuple[int, ...] = ()


@dataclass(frozen=True)
class FindingFilter:
    """Filters of ``list_findings``; each one given narrows the list (empty sets: any)."""

    states: frozenset[FindingState] = frozenset()  # effective states
    severities: frozenset[Severity] = frozenset()
    tool: str | None = None  # a finding any of whose sources is this tool
    rule: str | None = None  # ... is this rule (with ``tool``: the same source)
    path_prefix: str | None = None  # case-sensitive
    new_since: str | None = None  # test_id: findings seen after that scan that it did not see
    text: str | None = None  # in the message, path or rule id, case-insensitive


@dataclass(frozen=True)
class FindingView:
    """A finding as the store reports it."""

    id: int
    workspace_id: str
    component_id: str
    fingerprint: str
    tool: str
    rule_id: str
    sources: tuple[Source, ...]
    severity: Severity
    path: str
    line: int | None
    message: str
    cwe: str | None
    state: FindingState  # as triaged or set by a scan
    effective_state: FindingState  # ``open`` once a suppression has expired
    triage_reason: str | None
    triage_owner: str | None
    expires_at: datetime | None
    triaged_by: str | None
    triaged_at: datetime | None
    first_seen_test_id: str
    last_seen_test_id: str

    @property
    def expired(self) -> bool:
        return self.state in SUPPRESSED and self.effective_state is FindingState.OPEN


@dataclass(frozen=True)
class FindingPage:
    items: tuple[FindingView, ...]
    next_cursor: str | None  # None: this is the last page


@dataclass(frozen=True)
class TriageEventView:
    """One change of a finding's state."""

    id: int
    finding_id: int
    actor: str  # a person (an API key's name) or ``scan``
    at: datetime
    from_state: FindingState
    to_state: FindingState
    reason: str | None
    owner: str | None
    expires_at: datetime | None
    scan_test_id: str | None = None  # the scan that made the change, for a scan's change


def effective_state(state: FindingState | str, expires_at: datetime | None, now: datetime) -> FindingState:
    """The state a finding counts as at ``now``: a suppression past its expiry is open again."""
    state = FindingState(state)
    if state in SUPPRESSED and expires_at is not None and expires_at <= now:
        return FindingState.OPEN
    return state


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


def check_triage(to_state: FindingState | str, *, reason: str | None, owner: str | None,
                 expires_at: datetime | None, actor: str, now: datetime) -> FindingState:
    """The rules of triage; raises ``FindingsError(triage_invalid)`` naming the first one broken.

    ``accepted_risk`` needs a reason, an owner and an expiry in the future; ``false_positive`` a
    reason (an expiry is optional, and in the future when given); ``open`` takes neither owner nor
    expiry. ``fixed`` is not set by triage.
    """
    try:
        target = FindingState(to_state)
    except ValueError:
        target = None
    if target not in TRIAGE_TARGETS:
        allowed = ", ".join(sorted(TRIAGE_TARGETS))
        raise FindingsError(ErrorCode.TRIAGE_INVALID, f"state must be one of {allowed}")
    if _blank(actor) or len(actor) > MAX_PERSON:
        raise FindingsError(ErrorCode.TRIAGE_INVALID, f"actor must be 1 to {MAX_PERSON} characters")
    if reason is not None and len(reason) > MAX_REASON:
        raise FindingsError(ErrorCode.TRIAGE_INVALID, f"reason must be at most {MAX_REASON} characters")
    if owner is not None and len(owner) > MAX_PERSON:
        raise FindingsError(ErrorCode.TRIAGE_INVALID, f"owner must be at most {MAX_PERSON} characters")
    if expires_at is not None and expires_at.tzinfo is None:
        raise FindingsError(ErrorCode.TRIAGE_INVALID, "expires_at must carry a time zone")
    if target is FindingState.OPEN:
        if owner is not None or expires_at is not None:
            raise FindingsError(ErrorCode.TRIAGE_INVALID, "an open finding has no owner or expiry")
        return target
    if _blank(reason):
        raise FindingsError(ErrorCode.TRIAGE_INVALID, f"{target} needs a reason")
    if target is FindingState.ACCEPTED_RISK and (_blank(owner) or expires_at is None):
        raise FindingsError(ErrorCode.TRIAGE_INVALID, "accepted_risk needs an owner and expires_at")
    if expires_at is not None and expires_at <= now:
        raise FindingsError(ErrorCode.TRIAGE_INVALID, "expires_at must be in the future")
    return target
