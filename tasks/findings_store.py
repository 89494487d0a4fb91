"""The findings store: every recorded scan's findings per workspace and component, their state and
triage, on the SQL database of ``tasks.db`` (SQLite by default, PostgreSQL in production).

``record_scan`` writes a scan and its findings in one transaction with bulk statements (an upsert of
the logical findings, then their sources and the scan's occurrences) and compares it with its
baseline; ``diff`` compares any two recorded scans of a component; ``list_findings`` pages through
a component's findings with a keyset cursor; ``triage`` changes a finding's state and writes its
history in the same transaction. Times that decide an expiry come from the injected clock.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeAlias

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Row,
    and_,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import aliased

from tasks.db.engine import make_engine, read_connection, write_connection
from tasks.db.models import Finding, FindingSource, Scan, ScanFinding, TriageEvent
from tasks.errors import ErrorCode
from tasks.findings import (
    MAX_LIMIT,
    SCAN_ACTOR,
    SUPPRESSED,
    DiffEntry,
    DiffResult,
    FindingFilter,
    FindingInput,
    FindingPage,
    FindingsError,
    FindingState,
    FindingView,
    RecordResult,
    ScanInfo,
    ScanRef,
    Source,
    TriageEventView,
    check_triage,
    effective_state,
)
from tasks.settings import Settings
from tasks.states import ScanStatus, Severity

Clock = Callable[[], datetime]
_Row: TypeAlias = "Row[*tuple[Any, ...]]"
_SEVERITY = {s.value: s for s in Severity}
_CHUNK = 500  # parameters of one IN (...) list
_CURSOR_PREFIX = "f1."


_UPSERT_COLUMNS = ("tool", "rule_id", "severity", "severity_rank", "path", "line", "message", "cwe",
                   "last_seen_scan_id")
# A ``fixed`` finding that a scan of the baseline branch sees again is open again.
_REOPENED = func.coalesce(func.nullif(Finding.__table__.c.state, FindingState.FIXED.value), FindingState.OPEN.value)
# PostgreSQL gets each bulk write as one statement over one JSON parameter: a multi-row VALUES list
# of thousands of rows, or a dozen arrays, cost more to build and parse than the insert itself.
# In one statement every part sees the rows as they were before it: ``was_fixed`` names the fixed
# findings that this upsert opens again.
_PG_UPSERT = text("""
WITH input AS (
  SELECT * FROM json_to_recordset(CAST(:rows AS json))
    AS u(fp varchar, tool varchar, rule varchar, sev varchar, rank smallint, path text, line integer, msg text,
         cwe varchar)),
was_fixed AS (
  SELECT f.id FROM findings f JOIN input i ON f.fingerprint = i.fp
  WHERE f.workspace_id = :ws AND f.component_id = :comp AND f.state = 'fixed' AND :reopen),
up AS (
  INSERT INTO findings (workspace_id, component_id, fingerprint, tool, rule_id, severity, severity_rank, path, line,
                        message, cwe, state, first_seen_scan_id, last_seen_scan_id)
  SELECT :ws, :comp, fp, tool, rule, sev, rank, path, line, msg, cwe, 'open', :scan, :scan FROM input
  ON CONFLICT (workspace_id, component_id, fingerprint) DO UPDATE SET
    tool = excluded.tool, rule_id = excluded.rule_id, severity = excluded.severity,
    severity_rank = excluded.severity_rank, path = excluded.path, line = excluded.line, message = excluded.message,
    cwe = excluded.cwe, last_seen_scan_id = excluded.last_seen_scan_id,
    state = CASE WHEN :reopen THEN COALESCE(NULLIF(findings.state, 'fixed'), 'open') ELSE findings.state END
  RETURNING id, fingerprint)
SELECT up.id, up.fingerprint, up.id IN (SELECT id FROM was_fixed) AS reopened FROM up""")
_PG_SOURCES = text("""
INSERT INTO finding_sources (finding_id, tool, rule_id)
SELECT fid, tool, rule FROM json_to_recordset(CAST(:rows AS json)) AS u(fid bigint, tool varchar, rule varchar)
ON CONFLICT DO NOTHING""")
_PG_OCCURRENCES = text("""
INSERT INTO scan_findings (scan_id, finding_id, severity, line)
SELECT :scan, fid, sev, line FROM json_to_recordset(CAST(:rows AS json)) AS u(fid bigint, sev varchar, line integer)""")


_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Logical:
    """The inputs of one scan that share a fingerprint, merged: the most severe report speaks for it
    (the first of equals), with the first CWE any of them names."""

    first: FindingInput
    sources: set[tuple[str, str]] = field(default_factory=set)

    def add(self, item: FindingInput) -> None:
        self.sources.add((item.tool, item.rule_id))
        cwe = self.first.cwe or item.cwe
        if item.severity.rank < self.first.severity.rank:
            self.first = item
        if self.first.cwe != cwe:
            self.first = replace(self.first, cwe=cwe)


def _merge(findings: Iterable[FindingInput]) -> dict[str, _Logical]:
    merged: dict[str, _Logical] = {}
    for item in findings:
        logical = merged.get(item.fingerprint)
        if logical is None:
            merged[item.fingerprint] = _Logical(item, {(item.tool, item.rule_id)})
        else:
            logical.add(item)
    return merged


def _chunks(values: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _order(entries: Iterable[DiffEntry]) -> tuple[DiffEntry, ...]:
    return tuple(sorted(entries, key=lambda e: (e.severity.rank, e.path, e.line or 0, e.fingerprint)))


def encode_cursor(rank: int, finding_id: int) -> str:
    return _CURSOR_PREFIX + base64.urlsafe_b64encode(f"{rank}:{finding_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    try:
        if not cursor.startswith(_CURSOR_PREFIX):
            raise ValueError(cursor)
        body = cursor[len(_CURSOR_PREFIX):]
        rank, _, finding_id = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode().partition(":")
        value = int(rank), int(finding_id)
        if not 0 <= value[0] <= 4 or value[1] < 0:
            raise ValueError(cursor)
        return value
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise FindingsError(ErrorCode.INVALID_CURSOR, "not a cursor this service issued") from exc


class FindingsStore:
    def __init__(self, engine: Engine, clock: Clock = _utcnow) -> None:
        self.engine = engine
        self.clock = clock

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock = _utcnow) -> FindingsStore:
        return cls(make_engine(settings.database_url), clock)

    def close(self) -> None:
        self.engine.dispose()

    # -- transactions --------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        try:
            with write_connection(self.engine) as conn:
                yield conn
        except (OperationalError, InterfaceError) as exc:
            raise FindingsError(ErrorCode.DATABASE_UNAVAILABLE, "the database cannot be reached; retry") from exc

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with read_connection(self.engine) as conn:
                yield conn
        except (OperationalError, InterfaceError) as exc:
            raise FindingsError(ErrorCode.DATABASE_UNAVAILABLE, "the database cannot be reached; retry") from exc

    # -- scans ---------------------------------------------------------------------------------

    @staticmethod
    def _scans() -> Any:
        """Scans with the test_id of the baseline each was compared with."""
        baseline = aliased(Scan)
        return (select(Scan, baseline.test_id.label("baseline_test_id"))
                .outerjoin(baseline, baseline.id == Scan.baseline_scan_id))

    def _scan_row(self, conn: Connection, test_id: str) -> _Row | None:
        row: _Row | None = conn.execute(self._scans().where(Scan.test_id == test_id)).first()
        return row

    @staticmethod
    def _scan_ref(row: _Row) -> ScanRef:
        return ScanRef(test_id=row.test_id, workspace_id=row.workspace_id, component_id=row.component_id,
                       branch=row.branch, commit=row.commit_sha, status=ScanStatus(row.status),
                       created_at=row.created_at, finding_count=row.finding_count,
                       baseline_test_id=row.baseline_test_id)

    def scan(self, test_id: str) -> ScanRef | None:
        """A recorded scan, or None."""
        with self._read() as conn:
            row = self._scan_row(conn, test_id)
            return self._scan_ref(row) if row is not None else None

    def baseline_for(self, workspace_id: str, component_id: str, branch: str | None, *,
                     exclude_test_id: str | None = None, created_before: datetime | None = None) -> ScanRef | None:
        """The latest SUCCEEDED scan of the component on ``branch`` (by creation time), never
        ``exclude_test_id`` (the scan that asks); with ``created_before``, only a scan created before
        then (a scan that finishes after a newer one still compares with an older one). None when
        there is none."""
        query = (self._scans().where(Scan.workspace_id == workspace_id, Scan.component_id == component_id,
                                     Scan.branch.is_(None) if branch is None else Scan.branch == branch,
                                     Scan.status == ScanStatus.SUCCEEDED.value)
                 .order_by(Scan.created_at.desc(), Scan.id.desc()).limit(1))
        if exclude_test_id is not None:
            query = query.where(Scan.test_id != exclude_test_id)
        if created_before is not None:
            query = query.where(Scan.created_at < created_before)
        with self._read() as conn:
            row = conn.execute(query).first()
            return self._scan_ref(row) if row is not None else None

    def _baseline(self, conn: Connection, scan: ScanInfo) -> _Row | None:
        if scan.baseline_test_id is None:
            return None
        row = self._scan_row(conn, scan.baseline_test_id)
        if (row is None or scan.baseline_test_id == scan.test_id or row.workspace_id != scan.workspace_id
                or row.component_id != scan.component_id):
            raise FindingsError(ErrorCode.BASELINE_NOT_FOUND,
                                f"baseline {scan.baseline_test_id} is not a recorded scan of "
                                f"{scan.workspace_id}/{scan.component_id}")
        if row.status != ScanStatus.SUCCEEDED:
            raise FindingsError(ErrorCode.SCAN_NOT_SUCCEEDED,
                                f"baseline {scan.baseline_test_id} ended {row.status}, not SUCCEEDED")
        return row

    def _put_scan(self, conn: Connection, scan: ScanInfo, baseline_id: int | None, count: int, now: datetime) -> int:
        values = {"workspace_id": scan.workspace_id, "component_id": scan.component_id, "branch": scan.branch,
                  "commit_sha": scan.commit, "status": scan.status.value, "created_at": scan.created_at,
                  "recorded_at": now, "baseline_scan_id": baseline_id, "finding_count": count}
        existing = conn.execute(select(Scan.id, Scan.workspace_id, Scan.component_id)
                                .where(Scan.test_id == scan.test_id)).first()
        if existing is None:
            inserted = conn.execute(insert(Scan).values(test_id=scan.test_id, **values).returning(Scan.id))
            return int(inserted.scalar_one())
        if (existing.workspace_id, existing.component_id) != (scan.workspace_id, scan.component_id):
            raise ValueError(f"{scan.test_id} was recorded for another component")
        # Recorded again (a scan re-run after a lost worker): its occurrences are replaced.
        conn.execute(update(Scan).where(Scan.id == existing.id).values(**values))
        conn.execute(delete(ScanFinding).where(ScanFinding.scan_id == existing.id))
        return int(existing.id)

    # -- recording -----------------------------------------------------------------------------

    def record_scan(self, scan: ScanInfo, findings: Iterable[FindingInput]) -> RecordResult:
        """Record ``scan`` and the findings it reported, in one transaction, and compare it with
        ``scan.baseline_test_id`` (none: every finding is new). Recording the same scan again
        replaces what it saw."""
        merged = _merge(findings)
        now = self.clock()
        lifecycle = scan.status is ScanStatus.SUCCEEDED and scan.on_baseline_branch
        with self._write() as conn:
            baseline = self._baseline(conn, scan)
            scan_id = self._put_scan(conn, scan, baseline.id if baseline is not None else None, len(merged), now)
            ids, was_fixed = self._upsert_findings(conn, scan, scan_id, merged, reopen=lifecycle)
            self._insert_sources(conn, merged, ids)
            self._insert_occurrences(conn, scan_id, merged, ids)
            head = {ids[fp]: self._entry(ids[fp], item.first) for fp, item in merged.items()}
            if baseline is None:
                diff = DiffResult(None, scan.test_id, new=_order(head.values()))
            else:
                diff = self._compare(baseline.test_id, self._seen_by(conn, baseline.id), scan.test_id, head)
            reopened = tuple(sorted(ids[fp] for fp in was_fixed))
            marked: tuple[int, ...] = ()
            if lifecycle:
                marked = self._mark_fixed(conn, [e.finding_id for e in diff.fixed], scan_id, scan.test_id, now)
                self._history(conn, reopened, FindingState.FIXED, FindingState.OPEN, scan_id,
                              f"seen again by {scan.test_id}", now)
            row = self._scan_row(conn, scan.test_id)
            assert row is not None
            return RecordResult(scan=self._scan_ref(row),
                                baseline=self._scan_ref(baseline) if baseline is not None else None,
                                diff=diff, marked_fixed=marked, reopened=reopened)

    def _fixed_among(self, conn: Connection, scan: ScanInfo, fingerprints: list[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(fingerprints):
            found.update(conn.execute(
                select(Finding.fingerprint).where(Finding.workspace_id == scan.workspace_id,
                                                  Finding.component_id == scan.component_id,
                                                  Finding.fingerprint.in_(chunk),
                                                  Finding.state == FindingState.FIXED.value)).scalars())
        return found

    def _upsert_findings(self, conn: Connection, scan: ScanInfo, scan_id: int, merged: dict[str, _Logical], *,
                         reopen: bool) -> tuple[dict[str, int], set[str]]:
        """Insert the scan's logical findings, or update what the newest report says of those the
        component already has (``reopen``: and open the fixed ones again). Returns their ids by
        fingerprint, and the fingerprints of those opened again."""
        if not merged:
            return {}, set()
        items = [item.first for item in merged.values()]
        if conn.dialect.name == "postgresql":
            rows = [{"fp": f.fingerprint, "tool": f.tool, "rule": f.rule_id, "sev": f.severity.value,
                     "rank": f.severity.rank, "path": f.path or "", "line": f.line, "msg": f.message, "cwe": f.cwe}
                    for f in items]
            result = conn.execute(_PG_UPSERT, {"rows": _json(rows), "ws": scan.workspace_id,
                                               "comp": scan.component_id, "scan": scan_id, "reopen": reopen})
            ids: dict[str, int] = {}
            reopened: set[str] = set()
            for fid, fp, was_fixed in result:
                ids[fp] = int(fid)
                if was_fixed:
                    reopened.add(fp)
            return ids, reopened
        reopened = self._fixed_among(conn, scan, list(merged)) if reopen else set()
        stmt = sqlite.insert(Finding)
        changes: dict[str, Any] = {name: stmt.excluded[name] for name in _UPSERT_COLUMNS}
        if reopen:
            changes["state"] = _REOPENED
        stmt = stmt.on_conflict_do_update(index_elements=["workspace_id", "component_id", "fingerprint"], set_=changes)
        values = [{"workspace_id": scan.workspace_id, "component_id": scan.component_id, "fingerprint": f.fingerprint,
                   "tool": f.tool, "rule_id": f.rule_id, "severity": f.severity.value, "severity_rank": f.severity.rank,
                   "path": f.path or "", "line": f.line, "message": f.message, "cwe": f.cwe,
                   "state": FindingState.OPEN.value, "first_seen_scan_id": scan_id, "last_seen_scan_id": scan_id}
                  for f in items]
        ids = {}
        for chunk in _chunks(values, 1000):
            result = conn.execute(stmt.returning(Finding.id, Finding.fingerprint), list(chunk))
            ids.update({fp: int(fid) for fid, fp in result})
        return ids, reopened

    def _insert_sources(self, conn: Connection, merged: dict[str, _Logical], ids: dict[str, int]) -> None:
        rows = [(ids[fp], tool, rule) for fp, item in merged.items() for tool, rule in sorted(item.sources)]
        if not rows:
            return
        if conn.dialect.name == "postgresql":
            conn.execute(_PG_SOURCES, {"rows": _json([{"fid": f, "tool": t, "rule": r} for f, t, r in rows])})
            return
        conn.execute(sqlite.insert(FindingSource).on_conflict_do_nothing(),
                     [{"finding_id": fid, "tool": tool, "rule_id": rule} for fid, tool, rule in rows])

    def _insert_occurrences(self, conn: Connection, scan_id: int, merged: dict[str, _Logical],
                            ids: dict[str, int]) -> None:
        if not merged:
            return
        if conn.dialect.name == "postgresql":
            conn.execute(_PG_OCCURRENCES, {"scan": scan_id, "rows": _json(
                [{"fid": ids[fp], "sev": item.first.severity.value, "line": item.first.line}
                 for fp, item in merged.items()])})
            return
        conn.execute(insert(ScanFinding), [{"scan_id": scan_id, "finding_id": ids[fp],
                                            "severity": item.first.severity.value, "line": item.first.line}
                                           for fp, item in merged.items()])

    @staticmethod
    def _entry(finding_id: int, item: FindingInput) -> DiffEntry:
        return DiffEntry(finding_id=finding_id, fingerprint=item.fingerprint, tool=item.tool, rule_id=item.rule_id,
                         severity=item.severity, path=item.path or "", line=item.line, message=item.message,
                         cwe=item.cwe)

    def _seen_by(self, conn: Connection, scan_id: int) -> dict[int, DiffEntry]:
        """The findings one scan saw, with the severity and line it reported them with."""
        rows = conn.execute(
            select(ScanFinding.finding_id, ScanFinding.severity, ScanFinding.line, Finding.fingerprint, Finding.tool,
                   Finding.rule_id, Finding.path, Finding.message, Finding.cwe)
            .join(Finding, Finding.id == ScanFinding.finding_id).where(ScanFinding.scan_id == scan_id)).all()
        severity = _SEVERITY.__getitem__
        return {r[0]: DiffEntry(r[0], r[3], r[4], r[5], severity(r[1]), r[6], r[2], r[7], r[8]) for r in rows}

    @staticmethod
    def _compare(base_test_id: str, base: dict[int, DiffEntry], head_test_id: str,
                 head: dict[int, DiffEntry]) -> DiffResult:
        matched = base.keys() & head.keys()
        return DiffResult(
            base_test_id=base_test_id, head_test_id=head_test_id,
            new=_order(head[i] for i in head.keys() - base.keys()),
            unchanged=_order(head[i] for i in matched if head[i].severity == base[i].severity),
            updated=_order(head[i] for i in matched if head[i].severity != base[i].severity),
            fixed=_order(base[i] for i in base.keys() - head.keys()))

    def _mark_fixed(self, conn: Connection, finding_ids: list[int], scan_id: int, test_id: str,
                    now: datetime) -> tuple[int, ...]:
        marked: list[int] = []
        for chunk in _chunks(finding_ids):
            marked.extend(conn.execute(
                update(Finding).where(Finding.id.in_(chunk), Finding.state == FindingState.OPEN.value)
                .values(state=FindingState.FIXED.value).returning(Finding.id)).scalars())
        marked.sort()
        self._history(conn, marked, FindingState.OPEN, FindingState.FIXED, scan_id, f"not seen by {test_id}", now)
        return tuple(marked)

    @staticmethod
    def _history(conn: Connection, finding_ids: Sequence[int], from_state: FindingState, to_state: FindingState,
                 scan_id: int, reason: str, now: datetime) -> None:
        if finding_ids:
            conn.execute(insert(TriageEvent), [
                {"finding_id": fid, "actor": SCAN_ACTOR, "at": now, "from_state": from_state.value,
                 "to_state": to_state.value, "reason": reason, "owner": None, "expires_at": None, "scan_id": scan_id}
                for fid in finding_ids])

    # -- comparing -----------------------------------------------------------------------------

    def diff(self, base_test_id: str, head_test_id: str) -> DiffResult:
        """What ``head`` has compared with ``base`` (two recorded scans of one component)."""
        with self._read() as conn:
            rows = {}
            for test_id in (base_test_id, head_test_id):
                row = self._scan_row(conn, test_id)
                if row is None:
                    raise FindingsError(ErrorCode.SCAN_NOT_FOUND, f"no recorded scan {test_id}")
                rows[test_id] = row
            base, head = rows[base_test_id], rows[head_test_id]
            if (base.workspace_id, base.component_id) != (head.workspace_id, head.component_id):
                raise FindingsError(ErrorCode.SCANS_NOT_COMPARABLE,
                                    f"{base_test_id} and {head_test_id} are scans of different components")
            return self._compare(base_test_id, self._seen_by(conn, base.id), head_test_id,
                                 self._seen_by(conn, head.id))

    # -- reading findings ----------------------------------------------------------------------

    def _state_condition(self, state: FindingState, now: datetime) -> ColumnElement[bool]:
        suppressed = [s.value for s in SUPPRESSED]
        if state is FindingState.OPEN:
            return or_(Finding.state == state.value,
                       and_(Finding.state.in_(suppressed), Finding.expires_at.is_not(None), Finding.expires_at <= now))
        if state in SUPPRESSED:
            return and_(Finding.state == state.value, or_(Finding.expires_at.is_(None), Finding.expires_at > now))
        return Finding.state == state.value

    def _view_query(self) -> Any:
        first, last = aliased(Scan), aliased(Scan)
        return (select(Finding, first.test_id.label("first_seen_test_id"), last.test_id.label("last_seen_test_id"))
                .join(first, first.id == Finding.first_seen_scan_id)
                .join(last, last.id == Finding.last_seen_scan_id))

    def _views(self, conn: Connection, rows: Sequence[_Row], now: datetime) -> list[FindingView]:
        sources: dict[int, list[Source]] = {}
        ids = [r.id for r in rows]
        for chunk in _chunks(ids):
            for fid, tool, rule in conn.execute(
                    select(FindingSource.finding_id, FindingSource.tool, FindingSource.rule_id)
                    .where(FindingSource.finding_id.in_(chunk))
                    .order_by(FindingSource.finding_id, FindingSource.tool, FindingSource.rule_id)):
                sources.setdefault(fid, []).append(Source(tool, rule))
        return [FindingView(
            id=r.id, workspace_id=r.workspace_id, component_id=r.component_id, fingerprint=r.fingerprint, tool=r.tool,
            rule_id=r.rule_id, sources=tuple(sources.get(r.id, ())), severity=Severity(r.severity), path=r.path,
            line=r.line, message=r.message, cwe=r.cwe, state=FindingState(r.state),
            effective_state=effective_state(r.state, r.expires_at, now), triage_reason=r.triage_reason,
            triage_owner=r.triage_owner, expires_at=r.expires_at, triaged_by=r.triaged_by, triaged_at=r.triaged_at,
            first_seen_test_id=r.first_seen_test_id, last_seen_test_id=r.last_seen_test_id) for r in rows]

    def list_findings(self, workspace_id: str, component_id: str, filters: FindingFilter | None = None,
                      cursor: str | None = None, limit: int = 50) -> FindingPage:
        """A page of the component's findings, most severe first (then oldest first), after ``cursor``."""
        filters = filters or FindingFilter()
        if not 1 <= limit <= MAX_LIMIT:
            raise FindingsError(ErrorCode.VALIDATION_ERROR, f"limit must be 1 to {MAX_LIMIT}")
        now = self.clock()
        conditions: list[ColumnElement[bool]] = [Finding.workspace_id == workspace_id,
                                                 Finding.component_id == component_id]
        if filters.states:
            conditions.append(or_(*(self._state_condition(FindingState(s), now) for s in sorted(filters.states))))
        if filters.severities:
            conditions.append(Finding.severity_rank.in_(sorted(Severity(s).rank for s in filters.severities)))
        if filters.tool is not None or filters.rule is not None:
            source = exists().where(FindingSource.finding_id == Finding.id)
            if filters.tool is not None:
                source = source.where(FindingSource.tool == filters.tool)
            if filters.rule is not None:
                source = source.where(FindingSource.rule_id == filters.rule)
            conditions.append(source)
        if filters.path_prefix:
            conditions.append(func.substr(Finding.path, 1, len(filters.path_prefix)) == filters.path_prefix)
        if filters.text:
            conditions.append(or_(Finding.message.icontains(filters.text, autoescape=True),
                                  Finding.path.icontains(filters.text, autoescape=True),
                                  Finding.rule_id.icontains(filters.text, autoescape=True)))
        if cursor is not None:
            conditions.append(tuple_(Finding.severity_rank, Finding.id) > tuple_(*decode_cursor(cursor)))
        with self._read() as conn:
            if filters.new_since is not None:
                since = self._scan_row(conn, filters.new_since)
                if since is None or (since.workspace_id, since.component_id) != (workspace_id, component_id):
                    raise FindingsError(ErrorCode.SCAN_NOT_FOUND,
                                        f"no recorded scan {filters.new_since} of {workspace_id}/{component_id}")
                conditions.append(Finding.last_seen_scan_id > since.id)
                conditions.append(~exists().where(ScanFinding.scan_id == since.id,
                                                  ScanFinding.finding_id == Finding.id))
            rows = conn.execute(self._view_query().where(and_(true(), *conditions))
                                .order_by(Finding.severity_rank, Finding.id).limit(limit + 1)).all()
            more = len(rows) > limit
            rows = rows[:limit]
            items = self._views(conn, rows, now)
        next_cursor = encode_cursor(rows[-1].severity_rank, rows[-1].id) if more else None
        return FindingPage(tuple(items), next_cursor)

    def triaged(self, workspace_id: str, component_id: str) -> list[FindingView]:
        """The component's findings whose stored state is a suppression (``false_positive``,
        ``accepted_risk``), expired or not: ``effective_state`` says which still hold at the store's
        clock. A scan's gate leaves out those that hold."""
        now = self.clock()
        with self._read() as conn:
            rows = conn.execute(self._view_query().where(
                Finding.workspace_id == workspace_id, Finding.component_id == component_id,
                Finding.state.in_(sorted(s.value for s in SUPPRESSED))).order_by(Finding.id)).all()
            return self._views(conn, rows, now)

    def _finding_row(self, conn: Connection, finding_id: int, workspace_id: str | None) -> _Row:
        row = conn.execute(self._view_query().where(Finding.id == finding_id)).first()
        if row is None or (workspace_id is not None and row.workspace_id != workspace_id):
            raise FindingsError(ErrorCode.FINDING_NOT_FOUND, f"no finding {finding_id}")
        return row

    def get(self, finding_id: int, *, workspace_id: str | None = None) -> FindingView:
        """One finding; ``workspace_id``: refuse (as not found) a finding of another workspace."""
        now = self.clock()
        with self._read() as conn:
            return self._views(conn, [self._finding_row(conn, finding_id, workspace_id)], now)[0]

    # -- triage --------------------------------------------------------------------------------

    def triage(self, finding_id: int, to_state: FindingState | str, *, actor: str, reason: str | None = None,
               owner: str | None = None, expires_at: datetime | None = None,
               workspace_id: str | None = None) -> FindingView:
        """Set a finding's state by hand (see ``tasks.findings.check_triage`` for the rules) and
        record the change in its history, in one transaction."""
        now = self.clock()
        target = check_triage(to_state, reason=reason, owner=owner, expires_at=expires_at, actor=actor, now=now)
        reason = reason.strip() if reason is not None and reason.strip() else None
        owner = owner.strip() if owner is not None and owner.strip() else None
        with self._write() as conn:
            locked = select(Finding.state, Finding.workspace_id).where(Finding.id == finding_id)
            if conn.dialect.name == "postgresql":
                locked = locked.with_for_update()
            current = conn.execute(locked).first()
            if current is None or (workspace_id is not None and current.workspace_id != workspace_id):
                raise FindingsError(ErrorCode.FINDING_NOT_FOUND, f"no finding {finding_id}")
            conn.execute(update(Finding).where(Finding.id == finding_id).values(
                state=target.value, triage_reason=reason, triage_owner=owner, expires_at=expires_at,
                triaged_by=actor, triaged_at=now))
            conn.execute(insert(TriageEvent).values(
                finding_id=finding_id, actor=actor, at=now, from_state=current.state, to_state=target.value,
                reason=reason, owner=owner, expires_at=expires_at, scan_id=None))
            return self._views(conn, [self._finding_row(conn, finding_id, None)], now)[0]

    def history(self, finding_id: int, *, workspace_id: str | None = None) -> list[TriageEventView]:
        """Every change of the finding's state, oldest first."""
        with self._read() as conn:
            self._finding_row(conn, finding_id, workspace_id)
            rows = conn.execute(
                select(TriageEvent, Scan.test_id.label("scan_test_id"))
                .outerjoin(Scan, Scan.id == TriageEvent.scan_id)
                .where(TriageEvent.finding_id == finding_id).order_by(TriageEvent.id)).all()
        return [TriageEventView(id=r.id, finding_id=r.finding_id, actor=r.actor, at=r.at,
                                from_state=FindingState(r.from_state), to_state=FindingState(r.to_state),
                                reason=r.reason, owner=r.owner, expires_at=r.expires_at,
                                scan_test_id=r.scan_test_id) for r in rows]
