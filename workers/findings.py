"""A scan's findings across scans: its logical findings, their recording in the findings store when
the scan ends, the comparison with its baseline, and the triage its policy honours.

One finding, many tools: reports of different tools on the same code for the same weakness are one
*logical finding* with several sources (bandit B602, ruff S602 and semgrep's
subprocess-shell-with-input on one call). Which rules name the same weakness is data,
``workers/scanners/equivalences.json``. A logical finding's fingerprint covers the weakness, the
file and the flagged code, not its line number (it survives code moving, like the SARIF
fingerprint of each report), plus an occurrence number when the same code is flagged on several
lines of one file.

When a scan ends, ``FindingsRecorder.conclude`` resolves its baseline (``baseline``: a test_id,
``auto`` or ``none``), records the scan and its findings in one transaction
(``tasks.findings_store``), and reads the triage that holds for them. The ``Conclusion`` then
gives the summary its ``baseline`` and ``diff``, marks every SARIF result with its
``baselineState`` and logical fingerprint (and lists the baseline's fixed findings as ``absent``
results), writes ``reports/findings/diff.json``, and gives the attestation what it covers.

A database that cannot be reached does not lose the scan: it ends as it would have, with a
``database_unavailable`` warning and no comparison (``baseline`` and ``diff`` null, no
``baselineState``), and a profile that gates on new findings fails its policy (fail closed).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic.util import CommandError
from sqlalchemy.exc import SQLAlchemyError

from tasks import db
from tasks.bundle_verifier import ATTESTATION_PATH, sha256_file
from tasks.clock import parse_iso
from tasks.errors import ErrorCode
from tasks.findings import (
    MAX_RULE,
    SUPPRESSED,
    DiffEntry,
    DiffResult,
    FindingInput,
    FindingsError,
    FindingView,
    ScanInfo,
    ScanRef,
    severity_counts,
)
from tasks.findings_store import FindingsStore
from tasks.settings import Settings
from tasks.states import ScanStatus, Severity
from workers import sarif
from workers.bundle import Bundle
from workers.scanners.base import Finding

log = logging.getLogger(__name__)

EQUIVALENCES_FILE = Path(__file__).resolve().parent / "scanners" / "equivalences.json"
LOGICAL_VERSION = "certus-logical/v1"
EVIDENCE_PATH = "reports/findings/diff.json"
# The most findings a policy violation lists (its count is always whole).
MAX_LISTED = 100
_CWE = re.compile(r"(?i)^(?:CWE-)?(\d{1,6})\b")
_SEVERITY = {s.value: s for s in Severity}
# What an upgrade of the schema raises when the database is out of reach (or ahead of this code).
UPGRADE_ERRORS = (SQLAlchemyError, CommandError, OSError)


def now() -> datetime:
    return datetime.now(UTC)


# The findings store's clock in this process: the time that decides whether a triage's expiry has
# passed. Only the tests replace it (a worker plugin of theirs moves it forward).
CLOCK: Callable[[], datetime] = now


# -- one finding, many tools -------------------------------------------------------------------------

@dataclass(frozen=True)
class Weakness:
    key: str
    cwe: str | None = None


class Equivalences:
    """``workers/scanners/equivalences.json``: a tool's rule -> the weakness it reports."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.aliases: list[tuple[str, re.Pattern[str], str, str]] = [
            (a["tool"], re.compile(a["rule"]), a["as_tool"], a["as_rule"]) for a in data.get("aliases", [])]
        self.rules: dict[tuple[str, str], Weakness] = {}
        self.any_rule: dict[str, Weakness] = {}
        for key, spec in data.get("weaknesses", {}).items():
            weakness = Weakness(key, spec.get("cwe"))
            for tool, rules in spec.get("rules", {}).items():
                for rule in rules:
                    taken = self.any_rule.get(tool) if rule == "*" else self.rules.get((tool, rule))
                    if taken is not None:
                        raise ValueError(f"{tool} {rule} is in two weaknesses: {taken.key} and {key}")
                    if rule == "*":
                        self.any_rule[tool] = weakness
                    else:
                        self.rules[(tool, rule)] = weakness

    @classmethod
    def load(cls, path: Path = EQUIVALENCES_FILE) -> Equivalences:
        return cls(json.loads(path.read_text(encoding="utf-8")))

    def canonical(self, tool: str, rule: str) -> tuple[str, str]:
        """The tool and rule after the aliases (ruff S602 -> bandit B602)."""
        for alias_tool, pattern, as_tool, as_rule in self.aliases:
            if tool == alias_tool:
                match = pattern.fullmatch(rule)
                if match:
                    return as_tool, match.expand(as_rule)
        return tool, rule

    def weakness(self, tool: str, rule: str) -> Weakness:
        tool, rule = self.canonical(tool, rule)
        return self.rules.get((tool, rule)) or self.any_rule.get(tool) or Weakness(f"{tool}:{rule}")


@functools.cache
def equivalences() -> Equivalences:
    return Equivalences.load()


def cwe_of(value: Any) -> str | None:
    """A tool's CWE (bandit: 78; semgrep: "CWE-78: OS Command Injection") as "CWE-78"."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, list):
        value = value[0] if value else None
    match = _CWE.match(str(value).strip()) if value is not None else None
    return f"CWE-{match.group(1)}" if match else None


@dataclass(frozen=True)
class Report:
    """One tool's report of a logical finding, with its fingerprint in that tool's SARIF file."""

    tool: str
    finding: Finding
    fingerprint: str

    @property
    def rank(self) -> int:
        return _SEVERITY.get(self.finding.severity, Severity.INFO).rank


@dataclass
class LogicalFinding:
    fingerprint: str
    weakness: str
    cwe: str | None
    reports: list[Report] = field(default_factory=list)

    @property
    def lead(self) -> Report:
        """The report that speaks for it: the most severe, then the first by tool and rule."""
        return min(self.reports, key=lambda r: (r.rank, r.tool, r.finding.rule_id))

    @property
    def severity(self) -> Severity:
        return _SEVERITY.get(self.lead.finding.severity, Severity.INFO)

    @property
    def tools(self) -> list[str]:
        return sorted({r.tool for r in self.reports})

    def brief(self) -> dict[str, Any]:
        """What a policy violation and the evidence list of it."""
        lead = self.lead.finding
        return {"fingerprint": self.fingerprint, "severity": str(self.severity), "tools": self.tools,
                "rule_id": lead.rule_id,
                "sources": [{"tool": t, "rule_id": r} for t, r in sorted({(x.tool, x.finding.rule_id)
                                                                            for x in self.reports})],
                "path": lead.path, "line": lead.line}


@dataclass
class ScanFindings:
    """A scan's logical findings, by fingerprint, and the logical finding of each tool report."""

    logical: dict[str, LogicalFinding] = field(default_factory=dict)
    of_report: dict[tuple[str, str], str] = field(default_factory=dict)  # (tool, SARIF fingerprint) -> logical

    def by_severity(self, leave_out: Iterable[str] = ()) -> dict[str, int]:
        skip = set(leave_out)
        return severity_counts(f.severity for fp, f in self.logical.items() if fp not in skip)

    def inputs(self) -> list[FindingInput]:
        """One ``FindingInput`` per tool report, for the store."""
        out = []
        for fp, item in self.logical.items():
            for report in sorted(item.reports, key=lambda r: (r.tool, r.finding.rule_id, r.finding.line or 0)):
                f = report.finding
                out.append(FindingInput(
                    fingerprint=fp, tool=report.tool, rule_id=f.rule_id[:MAX_RULE] or "-",
                    severity=_SEVERITY.get(f.severity, Severity.INFO), path=f.path,
                    line=f.line if f.line is not None and f.line >= 0 else None, message=f.message,
                    cwe=item.cwe or cwe_of(f.properties.get("cwe"))))
        return out


def group(findings: Mapping[str, list[Finding]], table: Equivalences | None = None) -> ScanFindings:
    """The logical findings of one scan's tool reports (``ToolRunReport.findings``)."""
    table = table or equivalences()
    pending: list[tuple[str, Finding, str, Weakness, tuple[str, str, str], int]] = []
    lines: dict[tuple[str, str, str], set[int]] = {}
    for tool in sorted(findings):
        # One rule of one tool several times on one line (shellcheck's SC2086 for two variables):
        # that many findings, told apart by their order in the tool's SARIF file.
        seen: dict[tuple[str | None, int | None, str], int] = {}
        for finding, fingerprint in sarif.fingerprinted(findings[tool]):
            weakness = table.weakness(tool, finding.rule_id)
            place = (weakness.key, finding.path or "", sarif.anchor(finding))
            lines.setdefault(place, set()).add(finding.line or 0)
            key = (finding.path, finding.line, finding.rule_id)
            seen[key] = seen.get(key, 0) + 1
            pending.append((tool, finding, fingerprint, weakness, place, seen[key]))
    # The same code flagged on several lines of a file: numbered by line, across every tool.
    occurrence = {place: {line: i for i, line in enumerate(sorted(seen_lines), 1)}
                  for place, seen_lines in lines.items()}
    out = ScanFindings()
    for tool, finding, fingerprint, weakness, place, repeat in pending:
        number = f"{occurrence[place][finding.line or 0]}" + (f".{repeat}" if repeat > 1 else "")
        logical = hashlib.sha256("\x1f".join([LOGICAL_VERSION, *place, number]).encode()).hexdigest()
        item = out.logical.get(logical)
        if item is None:
            item = out.logical[logical] = LogicalFinding(logical, weakness.key, weakness.cwe)
        item.reports.append(Report(tool, finding, fingerprint))
        out.of_report[(tool, fingerprint)] = logical
    for item in out.logical.values():
        if item.cwe is None:
            item.cwe = next((c for c in (cwe_of(r.finding.properties.get("cwe")) for r in item.reports) if c), None)
    return out


# -- the comparison with the baseline ------------------------------------------------------------------

def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z") if value else None


def _fixed_brief(entry: DiffEntry) -> dict[str, Any]:
    return {"fingerprint": entry.fingerprint, "severity": str(entry.severity), "tools": [entry.tool],
            "rule_id": entry.rule_id, "path": entry.path or None, "line": entry.line}


@dataclass
class Conclusion:
    """What recording a scan's findings established (``recorded`` False: nothing, see ``warnings``)."""

    findings: ScanFindings
    test_id: str = ""
    recorded: bool = False
    baseline: ScanRef | None = None
    baseline_branch: str | None = None
    baseline_bundle: dict[str, str] | None = None  # {"path", "sha256"} of the baseline's bundle
    diff: DiffResult | None = None
    # Findings of this scan whose triage holds (false_positive, accepted_risk, unexpired) ...
    suppressions: dict[str, FindingView] = field(default_factory=dict)
    # ... and those whose triage has expired: open again.
    expired: dict[str, FindingView] = field(default_factory=dict)
    warnings: list[dict[str, str]] = field(default_factory=list)
    evidence_sha256: str | None = None
    info: ScanInfo | None = None  # what was recorded, to record it again as FAILED

    def warn(self, code: ErrorCode | str, message: str) -> None:
        self.warnings.append({"code": str(code), "message": message})

    # -- the summary ---------------------------------------------------------------------------
    def baseline_ref(self) -> dict[str, Any] | None:
        if self.baseline is None:
            return None
        return {"test_id": self.baseline.test_id, "commit": self.baseline.commit, "branch": self.baseline.branch}

    def summary_fields(self) -> dict[str, Any]:
        """``baseline`` ({test_id, commit, branch}, or null) and ``diff`` (counts by severity of
        ``new``, ``unchanged``, ``updated`` and ``fixed``; null when the scan could not be compared)."""
        return {"baseline": self.baseline_ref(), "diff": self.diff.counts() if self.diff is not None else None}

    def states(self) -> dict[str, str] | None:
        """Each of this scan's logical findings' ``baselineState`` (None: not compared)."""
        if self.diff is None:
            return None
        out: dict[str, str] = {}
        for name in ("new", "unchanged", "updated"):
            out.update((e.fingerprint, name) for e in getattr(self.diff, name))
        return out

    def new(self) -> list[LogicalFinding]:
        """This scan's findings its baseline did not have (no baseline: all of them)."""
        if self.diff is None:
            return []
        return [self.findings.logical[e.fingerprint] for e in self.diff.new if e.fingerprint in self.findings.logical]

    # -- triage --------------------------------------------------------------------------------
    @staticmethod
    def _triage(view: FindingView) -> dict[str, Any]:
        entry = {"fingerprint": view.fingerprint, "finding_id": view.id, "state": str(view.state),
                 "reason": view.triage_reason, "owner": view.triage_owner, "expires_at": _iso(view.expires_at),
                 "triaged_by": view.triaged_by, "triaged_at": _iso(view.triaged_at)}
        return {**entry, "sha256": hashlib.sha256(_canonical(entry)).hexdigest()}

    def applied(self) -> list[dict[str, Any]]:
        """The triage that takes findings of this scan out of its policy, each with its digest."""
        return [self._triage(v) for _, v in sorted(self.suppressions.items())]

    def applied_digest(self) -> str:
        return hashlib.sha256(_canonical(self.applied())).hexdigest()

    def lapsed(self) -> list[dict[str, Any]]:
        """Triage of this scan's findings whose expiry has passed (they count again)."""
        return [self._triage(v) for _, v in sorted(self.expired.items())]

    # -- the bundle ----------------------------------------------------------------------------
    def write(self, bundle: Bundle) -> None:
        """Mark the bundle's SARIF files (every result's logical fingerprint, its ``baselineState``,
        the triage that holds as a SARIF suppression; the baseline's fixed findings as ``absent``
        results of the tool that spoke for them) and write ``reports/findings/diff.json``."""
        states = self.states()
        held = {fp: _sarif_suppression(view) for fp, view in self.suppressions.items()}
        absent: dict[str, list[dict[str, Any]]] = {}
        for entry in self.diff.fixed if self.diff is not None else ():
            absent.setdefault(entry.tool, []).append(sarif.absent_result(
                entry.rule_id, str(entry.severity), entry.message, entry.path or None, entry.line, entry.fingerprint))
        for path in sorted(bundle.staging.glob("reports/**/*.sarif.json")):
            rel = path.relative_to(bundle.staging).as_posix()
            try:
                doc = json.loads(path.read_bytes())
            except ValueError:
                continue
            if isinstance(doc, dict) and sarif.annotate(doc, self.findings.of_report, states, held, absent):
                bundle.write_json(rel, doc)
        written = bundle.write_json(EVIDENCE_PATH, self.evidence())
        self.evidence_sha256 = sha256_file(written)

    def evidence(self) -> dict[str, Any]:
        """``reports/findings/diff.json``: the comparison and the triage applied, finding by finding."""
        diff = self.diff
        return {
            "test_id": self.test_id,
            "recorded": self.recorded,
            "baseline": ({**(self.baseline_ref() or {}), "bundle": self.baseline_bundle}
                         if self.baseline is not None else None),
            "baseline_branch": self.baseline_branch,
            "counts": diff.counts() if diff is not None else None,
            "new": [f.brief() for f in self.new()],
            "updated": [self.findings.logical[e.fingerprint].brief() for e in (diff.updated if diff else ())
                        if e.fingerprint in self.findings.logical],
            "fixed": [_fixed_brief(e) for e in (diff.fixed if diff else ())],
            "suppressions": {"applied": self.applied(), "sha256": self.applied_digest()},
            "expired_suppressions": self.lapsed(),
            "warnings": self.warnings,
        }

    def predicate(self) -> dict[str, Any]:
        """What the attestation says of the comparison and the triage (the files are its subjects)."""
        baseline = None
        if self.baseline is not None:
            baseline = {**(self.baseline_ref() or {}), "bundle_digest": self.baseline_bundle}
        return {
            "recorded": self.recorded,
            "baseline": baseline,
            "diff": self.diff.counts() if self.diff is not None else None,
            "suppressions": {"applied": [{k: v for k, v in t.items() if k != "triaged_at"} for t in self.applied()],
                             "sha256": self.applied_digest()},
            "evidence": {"path": EVIDENCE_PATH, "sha256": self.evidence_sha256} if self.evidence_sha256 else None,
        }


def _sarif_suppression(view: FindingView) -> dict[str, Any]:
    """A triage that holds, as a SARIF suppression (SARIF 2.1.0 §3.35: external, accepted)."""
    return {"kind": "external", "status": "accepted", "justification": view.triage_reason or str(view.state),
            "properties": {"state": str(view.state), "owner": view.triage_owner,
                           "expiresAt": _iso(view.expires_at), "triagedBy": view.triaged_by}}


@dataclass(frozen=True)
class ScanContext:
    """What recording needs of a scan that ran its tools."""

    test_id: str
    workspace_id: str
    component_id: str
    status: ScanStatus
    created_at: str
    findings: ScanFindings
    baseline: str | None = None  # the request's: a test_id, "auto" (None: auto) or "none"
    baseline_branch: str | None = None  # the request's
    branch: str | None = None  # the branch scanned (resolved)
    commit: str | None = None
    default_branch: str | None = None  # the repository's (a git source)


class FindingsRecorder:
    """One per worker process: the findings store, made from the settings on first use in the
    process that uses it (never shared across a fork), its schema brought to the newest migration."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.equivalences = equivalences()  # a broken data file stops the worker at start
        self._store: FindingsStore | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def store(self) -> FindingsStore:
        with self._lock:
            if self._store is None or self._pid != os.getpid():
                url = self.settings.database_url
                # A database host that does not answer fails the connection in seconds, not minutes.
                options = {"connect_args": {"connect_timeout": 10}} if url.startswith("postgresql") else {}
                store = FindingsStore(db.make_engine(url, **options), clock=lambda: CLOCK())
                try:
                    db.upgrade(store.engine)
                except UPGRADE_ERRORS as exc:
                    store.close()
                    raise FindingsError(ErrorCode.DATABASE_UNAVAILABLE,
                                        f"the database cannot be upgraded ({exc.__class__.__name__})") from exc
                self._store, self._pid = store, os.getpid()
            return self._store

    def conclude(self, ctx: ScanContext) -> Conclusion:
        """Record the scan and compare it with its baseline. Never raises: what went wrong is a
        warning of the conclusion, which then says ``recorded`` False."""
        conclusion = Conclusion(findings=ctx.findings, test_id=ctx.test_id)
        try:
            self._record(ctx, conclusion)
        except FindingsError as exc:
            log.warning("scan %s: findings not recorded: %s (%s)", ctx.test_id, exc.message, exc.code)
            conclusion.warn(exc.code, f"this scan's findings were not recorded ({exc.message}); it was compared "
                                      "with no baseline")
        except Exception:
            log.exception("scan %s: recording its findings failed", ctx.test_id)
            conclusion.warn(ErrorCode.INTERNAL_ERROR, "this scan's findings could not be recorded; it was compared "
                                                      "with no baseline")
        if conclusion.recorded:
            try:
                self._triage(ctx, conclusion)
            except (FindingsError, SQLAlchemyError) as exc:
                log.warning("scan %s: triage not read: %s", ctx.test_id, exc.__class__.__name__)
                conclusion.warn(ErrorCode.DATABASE_UNAVAILABLE,
                                "the triage of this scan's findings could not be read: none was applied")
        return conclusion

    def record_failed(self, conclusion: Conclusion) -> None:
        """The scan that was recorded SUCCEEDED ended FAILED after all (its bundle could not be
        written): record it again as FAILED, so it is never a baseline."""
        if not conclusion.recorded or conclusion.info is None:
            return
        info = replace(conclusion.info, status=ScanStatus.FAILED,
                       baseline_test_id=conclusion.baseline.test_id if conclusion.baseline else None)
        try:
            self.store().record_scan(info, conclusion.findings.inputs())
        except Exception:
            log.exception("scan %s: could not be recorded again as FAILED", info.test_id)

    def _record(self, ctx: ScanContext, conclusion: Conclusion) -> None:
        store = self.store()
        # The component's baseline branch: as asked, else the repository's default branch; a git
        # repository that names none: the branch scanned. Other sources have no branch.
        baseline_branch = ctx.baseline_branch or ctx.default_branch or (ctx.branch if ctx.commit else None)
        try:
            created = parse_iso(ctx.created_at)
        except (TypeError, ValueError):
            created = CLOCK()
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        mode = ctx.baseline or "auto"
        baseline_id: str | None = None
        if mode == "auto":
            ref = store.baseline_for(ctx.workspace_id, ctx.component_id, baseline_branch,
                                     exclude_test_id=ctx.test_id, created_before=created)
            baseline_id = ref.test_id if ref is not None else None
        elif mode != "none":
            baseline_id = mode
        info = ScanInfo(test_id=ctx.test_id, workspace_id=ctx.workspace_id, component_id=ctx.component_id,
                        status=ctx.status, created_at=created, branch=ctx.branch, commit=ctx.commit,
                        baseline_test_id=baseline_id, on_baseline_branch=ctx.branch == baseline_branch)
        inputs = ctx.findings.inputs()
        try:
            result = store.record_scan(info, inputs)
        except FindingsError as exc:
            if baseline_id is None or exc.code not in (ErrorCode.BASELINE_NOT_FOUND, ErrorCode.SCAN_NOT_SUCCEEDED):
                raise
            conclusion.warn(exc.code, f"baseline {baseline_id} cannot be used ({exc.message}); the scan was "
                                      "compared with no baseline: every finding is new")
            info = replace(info, baseline_test_id=None)
            result = store.record_scan(info, inputs)
        conclusion.recorded = True
        conclusion.info = info
        conclusion.baseline_branch = baseline_branch
        conclusion.baseline = result.baseline
        conclusion.diff = result.diff
        if result.baseline is not None:
            conclusion.baseline_bundle = bundle_digest(self.settings.artifact_root, result.baseline.test_id)

    def _triage(self, ctx: ScanContext, conclusion: Conclusion) -> None:
        mine = ctx.findings.logical
        for view in self.store().triaged(ctx.workspace_id, ctx.component_id):
            if view.fingerprint not in mine:
                continue
            if view.effective_state in SUPPRESSED:
                conclusion.suppressions[view.fingerprint] = view
            elif view.expired:
                conclusion.expired[view.fingerprint] = view


def bundle_digest(artifact_root: str, test_id: str) -> dict[str, str] | None:
    """The digest of a scan's bundle as the bundle has it: its signed attestation (which covers
    every other file), else its scan.json; None once the bundle is gone (retention)."""
    root = Path(artifact_root) / test_id
    for rel in (ATTESTATION_PATH, "scan.json"):
        try:
            return {"path": rel, "sha256": sha256_file(root / rel)}
        except OSError:
            continue
    return None


def counted(findings: ScanFindings) -> dict[str, Any]:
    """The summary's ``total`` and ``by_severity``: logical findings (``by_tool`` counts reports)."""
    by_severity = findings.by_severity()
    return {"total": sum(by_severity.values()), "by_severity": by_severity}
