"""The findings store on a real database, each test once on SQLite and once on the tests' own
PostgreSQL: recording scans against a baseline, diffs, the baseline of a branch, listing with
filters and a cursor, triage and its history, expiry by the store's clock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from tasks.db import make_engine
from tasks.errors import ErrorCode
from tasks.findings import (
    FindingFilter,
    FindingInput,
    FindingsError,
    FindingState,
    ScanInfo,
    check_triage,
    effective_state,
)
from tasks.findings_store import FindingsStore, decode_cursor, encode_cursor
from tasks.states import ScanStatus, Severity

# database_url (SQLite and PostgreSQL) and postgres_server

pytest_plugins = ["tests.support.postgres"]

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SEVERITIES = list(Severity)




def finding(n: int, *, tool: str = "bandit", rule: str | None = None, severity: Severity | None = None,
            path: str | None = None, fingerprint: str | None = None, message: str | None = None,
            cwe: str | None = None) -> FindingInput:
    return FindingInput(fingerprint=fingerprint or f"fp{n:05d}", tool=tool, rule_id=rule or f"B{n % 7}",
                        severity=severity or SEVERITIES[n % 5], path=path if path is not None else f"src/m{n % 10}.py",
                        line=n + 1, message=message or f"finding number {n}", cwe=cwe)


def scan(test_id: str, hours: int = 0, *, branch: str = "main", baseline: str | None = None,
         status: ScanStatus = ScanStatus.SUCCEEDED, component: str = "billing", workspace: str = "acme",
         on_baseline_branch: bool = True) -> ScanInfo:
    return ScanInfo(test_id=test_id, workspace_id=workspace, component_id=component, status=status,
                    created_at=T0 + timedelta(hours=hours), branch=branch, commit=f"{test_id}-sha",
                    baseline_test_id=baseline, on_baseline_branch=on_baseline_branch)


def fingerprints(entries) -> set[str]:
    return {e.fingerprint for e in entries}


def everything(store: FindingsStore, filters: FindingFilter | None = None, *, workspace: str = "acme",
               component: str = "billing", limit: int = 500):
    items, cursor = [], None
    while True:
        page = store.list_findings(workspace, component, filters, cursor, limit)
        items.extend(page.items)
        if page.next_cursor is None:
            return items
        cursor = page.next_cursor


# -- recording and comparing -------------------------------------------------------------------------

def test_a_first_scan_without_baseline_is_all_new(store):
    result = store.record_scan(scan("test_a"), [finding(i) for i in range(10)])
    assert result.baseline is None and result.diff.base_test_id is None
    assert len(result.diff.new) == 10 and not result.diff.fixed and not result.diff.unchanged
    assert result.scan.test_id == "test_a" and result.scan.finding_count == 10
    assert result.scan.commit == "test_a-sha" and result.scan.status is ScanStatus.SUCCEEDED
    assert result.diff.counts()["new"] == {"critical": 2, "high": 2, "medium": 2, "low": 2, "info": 2}
    # most severe first
    assert [e.severity for e in result.diff.new][:2] == [Severity.CRITICAL, Severity.CRITICAL]


def test_a_scan_against_its_baseline_reports_new_unchanged_updated_and_fixed(store):
    store.record_scan(scan("test_a"), [finding(i) for i in range(10)])
    # 0 gone, 10 added, 1 changes severity, the rest move lines (still the same fingerprint)
    second = [finding(i) for i in range(2, 10)] + [finding(10), finding(1, severity=Severity.CRITICAL)]
    second = [FindingInput(**{**f.__dict__, "line": (f.line or 0) + 40}) for f in second]
    result = store.record_scan(scan("test_b", 1, baseline="test_a"), second)
    assert result.baseline is not None and result.baseline.test_id == "test_a"
    assert result.baseline.commit == "test_a-sha"
    assert fingerprints(result.diff.new) == {"fp00010"}
    assert fingerprints(result.diff.fixed) == {"fp00000"}
    assert fingerprints(result.diff.updated) == {"fp00001"}
    assert fingerprints(result.diff.unchanged) == {f"fp{i:05d}" for i in range(2, 10)}
    assert result.scan.baseline_test_id == "test_a"
    fixed = result.diff.fixed[0]
    assert (fixed.severity, fixed.line, fixed.path) == (Severity.CRITICAL, 1, "src/m0.py")  # as the baseline saw it
    # diff of the same two scans later says the same
    again = store.diff("test_a", "test_b")
    assert (fingerprints(again.new), fingerprints(again.fixed), fingerprints(again.updated),
            fingerprints(again.unchanged)) == (fingerprints(result.diff.new), fingerprints(result.diff.fixed),
                                               fingerprints(result.diff.updated), fingerprints(result.diff.unchanged))
    # and the other way round
    back = store.diff("test_b", "test_a")
    assert fingerprints(back.new) == {"fp00000"} and fingerprints(back.fixed) == {"fp00010"}


def test_any_two_scans_of_a_component_compare_also_across_branches(store):
    store.record_scan(scan("test_a"), [finding(i) for i in range(5)])
    store.record_scan(scan("test_f", 1, branch="feature", on_baseline_branch=False), [finding(i) for i in range(3, 8)])
    diff = store.diff("test_a", "test_f")
    assert fingerprints(diff.new) == {"fp00005", "fp00006", "fp00007"}
    assert fingerprints(diff.fixed) == {"fp00000", "fp00001", "fp00002"}


def test_diff_refuses_unknown_scans_and_scans_of_other_components(store):
    store.record_scan(scan("test_a"), [finding(1)])
    store.record_scan(scan("test_o", component="other"), [finding(1)])
    with pytest.raises(FindingsError) as err:
        store.diff("test_a", "test_nope")
    assert err.value.code is ErrorCode.SCAN_NOT_FOUND
    with pytest.raises(FindingsError) as err:
        store.diff("test_a", "test_o")
    assert err.value.code is ErrorCode.SCANS_NOT_COMPARABLE


def test_reports_of_several_tools_with_one_fingerprint_are_one_finding_with_several_sources(store):
    bandit = finding(1, tool="bandit", rule="B602", severity=Severity.HIGH, fingerprint="shell-1", cwe="CWE-78")
    ruff = finding(1, tool="ruff", rule="S602", severity=Severity.CRITICAL, fingerprint="shell-1")
    semgrep = finding(1, tool="semgrep", rule="subprocess-shell-true", severity=Severity.MEDIUM,
                      fingerprint="shell-1", cwe="CWE-78")
    result = store.record_scan(scan("test_a"), [bandit, ruff, semgrep, finding(2)])
    assert result.scan.finding_count == 2 and len(result.diff.new) == 2
    view = next(v for v in everything(store) if v.fingerprint == "shell-1")
    assert {(s.tool, s.rule_id) for s in view.sources} == {("bandit", "B602"), ("ruff", "S602"),
                                                           ("semgrep", "subprocess-shell-true")}
    assert view.severity is Severity.CRITICAL and view.tool == "ruff"  # the most severe report speaks
    assert view.cwe == "CWE-78"  # ... with the CWE another source named
    # a later scan where only one tool reports it keeps every source seen
    store.record_scan(scan("test_b", 1, baseline="test_a"), [bandit, finding(2)])
    view = store.get(view.id)
    assert len(view.sources) == 3 and view.severity is Severity.HIGH


def test_recording_a_scan_again_replaces_what_it_saw(store):
    store.record_scan(scan("test_a"), [finding(i) for i in range(5)])
    store.record_scan(scan("test_b", 1, baseline="test_a"), [finding(i) for i in range(5)])
    result = store.record_scan(scan("test_b", 1, baseline="test_a"), [finding(i) for i in range(1, 5)])
    assert fingerprints(result.diff.fixed) == {"fp00000"}
    assert store.scan("test_b").finding_count == 4
    assert fingerprints(store.diff("test_a", "test_b").fixed) == {"fp00000"}


def test_a_baseline_must_be_a_succeeded_scan_of_the_same_component_and_not_the_scan_itself(store):
    store.record_scan(scan("test_a"), [finding(1)])
    store.record_scan(scan("test_x", 1, status=ScanStatus.FAILED), [finding(1)])
    store.record_scan(scan("test_o", component="other"), [finding(1)])
    for baseline, code in (("test_nope", ErrorCode.BASELINE_NOT_FOUND), ("test_o", ErrorCode.BASELINE_NOT_FOUND),
                           ("test_b", ErrorCode.BASELINE_NOT_FOUND), ("test_x", ErrorCode.SCAN_NOT_SUCCEEDED)):
        with pytest.raises(FindingsError) as err:
            store.record_scan(scan("test_b", 2, baseline=baseline), [finding(2)])
        assert err.value.code is code, baseline
    assert store.scan("test_b") is None  # nothing of a refused scan was kept


def test_the_baseline_of_a_branch_is_its_latest_succeeded_scan_never_the_asking_one(store):
    assert store.baseline_for("acme", "billing", "main") is None
    store.record_scan(scan("test_1", 1), [finding(1)])
    store.record_scan(scan("test_3", 3), [finding(1)])
    store.record_scan(scan("test_2", 2), [finding(1)])  # recorded last, created earlier
    store.record_scan(scan("test_4", 4, status=ScanStatus.FAILED), [finding(1)])
    store.record_scan(scan("test_5", 5, status=ScanStatus.CANCELLED), [])
    store.record_scan(scan("test_f", 6, branch="feature", on_baseline_branch=False), [finding(1)])
    store.record_scan(scan("test_o", 7, component="other"), [finding(1)])
    baseline = store.baseline_for("acme", "billing", "main")
    assert baseline is not None and baseline.test_id == "test_3" and baseline.branch == "main"
    assert store.baseline_for("acme", "billing", "main", exclude_test_id="test_3").test_id == "test_2"
    store.record_scan(scan("test_6", 8, baseline="test_3"), [finding(1)])
    latest = store.baseline_for("acme", "billing", "main")
    assert (latest.test_id, latest.baseline_test_id, latest.commit) == ("test_6", "test_3", "test_6-sha")
    assert store.baseline_for("acme", "billing", "feature").test_id == "test_f"
    assert store.baseline_for("acme", "billing", "release") is None
    assert store.baseline_for("other-ws", "billing", "main") is None


def test_a_scan_of_the_baseline_branch_marks_fixed_findings_and_opens_them_when_they_come_back(store, clock):
    store.record_scan(scan("test_a"), [finding(i) for i in range(4)])
    first = {v.fingerprint: v for v in everything(store)}
    store.triage(first["fp00003"].id, "false_positive", actor="alice", reason="test code")
    # a feature branch scan that lacks a finding changes no state
    result = store.record_scan(scan("test_f", 1, branch="feature", baseline="test_a", on_baseline_branch=False),
                               [finding(i) for i in range(1, 4)])
    assert fingerprints(result.diff.fixed) == {"fp00000"} and result.marked_fixed == ()
    assert store.get(first["fp00000"].id).state is FindingState.OPEN
    # a main scan that lacks two: the open one is fixed, the triaged one keeps its triage
    clock.now = T0 + timedelta(hours=2)
    result = store.record_scan(scan("test_b", 2, baseline="test_a"), [finding(1), finding(2)])
    assert result.marked_fixed == (first["fp00000"].id,)
    assert store.get(first["fp00000"].id).state is FindingState.FIXED
    assert store.get(first["fp00003"].id).state is FindingState.FALSE_POSITIVE
    # a failed main scan changes nothing
    store.record_scan(scan("test_x", 3, baseline="test_b", status=ScanStatus.FAILED), [finding(0)])
    assert store.get(first["fp00000"].id).state is FindingState.FIXED
    # it comes back on main: open again
    clock.now = T0 + timedelta(hours=4)
    result = store.record_scan(scan("test_c", 4, baseline="test_b"), [finding(0), finding(1), finding(2)])
    assert result.reopened == (first["fp00000"].id,)
    assert fingerprints(result.diff.new) == {"fp00000"}
    assert store.get(first["fp00000"].id).state is FindingState.OPEN
    history = store.history(first["fp00000"].id)
    assert [(h.actor, h.from_state, h.to_state, h.scan_test_id, h.at) for h in history] == [
        ("scan", FindingState.OPEN, FindingState.FIXED, "test_b", T0 + timedelta(hours=2)),
        ("scan", FindingState.FIXED, FindingState.OPEN, "test_c", T0 + timedelta(hours=4))]


def test_first_and_last_seen(store):
    store.record_scan(scan("test_a"), [finding(1)])
    store.record_scan(scan("test_b", 1, baseline="test_a"), [finding(1), finding(2)])
    views = {v.fingerprint: v for v in everything(store)}
    assert (views["fp00001"].first_seen_test_id, views["fp00001"].last_seen_test_id) == ("test_a", "test_b")
    assert (views["fp00002"].first_seen_test_id, views["fp00002"].last_seen_test_id) == ("test_b", "test_b")


def test_an_empty_scan_records_and_fixes_everything(store):
    store.record_scan(scan("test_a"), [finding(i) for i in range(3)])
    result = store.record_scan(scan("test_b", 1, baseline="test_a"), [])
    assert len(result.diff.fixed) == 3 and len(result.marked_fixed) == 3 and result.scan.finding_count == 0


def test_two_scans_of_one_component_recorded_at_once_both_land(store):
    # Overlapping new fingerprints from two writers: one waits (SQLite) or the upsert merges (PostgreSQL).
    errors: list[BaseException] = []

    def record(test_id: str, offset: int) -> None:
        try:
            store.record_scan(scan(test_id, branch=f"b-{test_id}", on_baseline_branch=False),
                              [finding(i) for i in range(offset, offset + 800)])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=record, args=(f"test_{n}", n * 400)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert len(everything(store)) == 1600
    assert {store.scan(f"test_{n}").finding_count for n in range(3)} == {800}


def test_recording_5000_findings_takes_a_handful_of_statements(store):
    # The figure that keeps recording fast on a real database (timed in bench/findings.py): the
    # statements do not grow with the number of findings.
    store.record_scan(scan("test_a"), [finding(i) for i in range(5000)])
    statements: list[str] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    result = store.record_scan(scan("test_b", 1, baseline="test_a"), [finding(i) for i in range(100, 5100)])
    assert len(result.diff.new) == 100 and len(result.diff.fixed) == 100 and len(result.diff.unchanged) == 4900
    assert len(statements) <= 30, len(statements)


# -- listing -------------------------------------------------------------------------------------------

def test_listing_pages_through_every_finding_once_most_severe_first(store):
    store.record_scan(scan("test_a"), [finding(i) for i in range(237)])
    pages, cursor = [], None
    while True:
        page = store.list_findings("acme", "billing", cursor=cursor, limit=50)
        pages.append(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    items = [v for p in pages for v in p]
    assert [len(p) for p in pages] == [50, 50, 50, 50, 37]
    assert len({v.id for v in items}) == 237
    keys = [(v.severity.rank, v.id) for v in items]
    assert keys == sorted(keys)
    assert all(v.workspace_id == "acme" and v.component_id == "billing" for v in items)


def test_a_page_that_ends_exactly_at_the_limit_has_no_cursor(store):
    store.record_scan(scan("test_a"), [finding(i) for i in range(10)])
    assert store.list_findings("acme", "billing", limit=10).next_cursor is None
    assert store.list_findings("other", "billing").items == ()


def test_a_cursor_the_service_did_not_issue_is_refused(store):
    for bad in ("nope", "f1.!!!", encode_cursor(2, 5)[:-1] + "*", "f1." + "bm90IGEgY3Vyc29y", "f1.OTo5"):
        with pytest.raises(FindingsError) as err:
            store.list_findings("acme", "billing", cursor=bad)
        assert err.value.code is ErrorCode.INVALID_CURSOR, bad
    assert decode_cursor(encode_cursor(3, 12345)) == (3, 12345)
    with pytest.raises(FindingsError) as err:
        store.list_findings("acme", "billing", limit=0)
    assert err.value.code is ErrorCode.VALIDATION_ERROR


def test_filters_by_severity_tool_rule_path_and_text(store):
    inputs = [finding(i, path=f"app/{'api' if i % 2 else 'web'}/f{i}.py") for i in range(40)]
    inputs += [finding(100, tool="semgrep", rule="python.sqli", path="lib/db.py", message="SQL built from 50%_input"),
               finding(101, tool="ruff", rule="S602", severity=Severity.LOW, fingerprint="fp00001")]
    store.record_scan(scan("test_a"), inputs)
    high = everything(store, FindingFilter(severities=frozenset({Severity.HIGH, Severity.CRITICAL})))
    assert high and all(v.severity in (Severity.HIGH, Severity.CRITICAL) for v in high)
    assert len(high) == sum(1 for i in [*range(40), 100] if SEVERITIES[i % 5] in (Severity.HIGH, Severity.CRITICAL))
    assert {v.fingerprint for v in everything(store, FindingFilter(tool="semgrep"))} == {"fp00100"}
    # a tool that is one of several sources
    assert {v.fingerprint for v in everything(store, FindingFilter(tool="ruff"))} == {"fp00001"}
    assert {v.fingerprint for v in everything(store, FindingFilter(tool="ruff", rule="S602"))} == {"fp00001"}
    assert everything(store, FindingFilter(tool="bandit", rule="S602")) == []
    by_rule = everything(store, FindingFilter(rule="B3"))
    assert by_rule and all(any(s.rule_id == "B3" for s in v.sources) for v in by_rule)
    api = everything(store, FindingFilter(path_prefix="app/api/"))
    assert len(api) == 20 and all(v.path.startswith("app/api/") for v in api)
    assert everything(store, FindingFilter(path_prefix="APP/")) == []  # case-sensitive
    assert everything(store, FindingFilter(path_prefix="app/a%")) == []
    # text: message, path or rule; case-insensitive; LIKE wildcards are plain characters
    assert {v.fingerprint for v in everything(store, FindingFilter(text="50%_INPUT"))} == {"fp00100"}
    assert {v.fingerprint for v in everything(store, FindingFilter(text="PYTHON.SQLI"))} == {"fp00100"}
    assert {v.fingerprint for v in everything(store, FindingFilter(text="APP/WEB/F2."))} == {"fp00002"}
    assert everything(store, FindingFilter(text="%")) == [v for v in everything(store)
                                                          if "%" in v.message]
    combined = everything(store, FindingFilter(path_prefix="app/", severities=frozenset({Severity.LOW}), text="f1"))
    assert combined and all(v.severity is Severity.LOW and v.path.startswith("app/") and "f1" in v.path
                            for v in combined)


def test_new_since_a_scan(store):
    store.record_scan(scan("test_a"), [finding(i) for i in range(5)])
    store.record_scan(scan("test_b", 1, baseline="test_a"), [finding(i) for i in range(2, 8)])
    store.record_scan(scan("test_c", 2, baseline="test_b"), [finding(i) for i in range(3, 9)])
    since_a = everything(store, FindingFilter(new_since="test_a"))
    assert {v.fingerprint for v in since_a} == {"fp00005", "fp00006", "fp00007", "fp00008"}
    assert {v.fingerprint for v in everything(store, FindingFilter(new_since="test_b"))} == {"fp00008"}
    assert everything(store, FindingFilter(new_since="test_c")) == []
    with pytest.raises(FindingsError) as err:
        store.list_findings("acme", "billing", FindingFilter(new_since="test_nope"))
    assert err.value.code is ErrorCode.SCAN_NOT_FOUND


def test_findings_of_other_components_and_workspaces_stay_apart(store):
    store.record_scan(scan("test_a"), [finding(i) for i in range(3)])
    store.record_scan(scan("test_o", component="other"), [finding(i) for i in range(5)])
    store.record_scan(scan("test_w", workspace="globex"), [finding(i) for i in range(7)])
    assert len(everything(store)) == 3
    assert len(everything(store, component="other")) == 5
    assert len(everything(store, workspace="globex")) == 7
    [one] = everything(store)[:1]
    with pytest.raises(FindingsError) as err:
        store.get(one.id, workspace_id="globex")
    assert err.value.code is ErrorCode.FINDING_NOT_FOUND
    with pytest.raises(FindingsError) as err:
        store.triage(one.id, "false_positive", actor="mallory", reason="x", workspace_id="globex")
    assert err.value.code is ErrorCode.FINDING_NOT_FOUND
    with pytest.raises(FindingsError) as err:
        store.history(one.id, workspace_id="globex")
    assert err.value.code is ErrorCode.FINDING_NOT_FOUND
    assert store.get(one.id, workspace_id="acme").state is FindingState.OPEN


# -- triage and expiry -----------------------------------------------------------------------------

def test_triage_rules(store, clock):
    store.record_scan(scan("test_a"), [finding(1)])
    [view] = everything(store)
    later = T0 + timedelta(days=30)
    refused = [
        dict(to_state="accepted_risk", reason="ok", owner="bob"),  # no expiry
        dict(to_state="accepted_risk", reason="ok", expires_at=later),  # no owner
        dict(to_state="accepted_risk", owner="bob", expires_at=later),  # no reason
        dict(to_state="accepted_risk", reason="  ", owner="bob", expires_at=later),  # a blank reason
        dict(to_state="accepted_risk", reason="ok", owner="bob", expires_at=T0),  # not in the future
        dict(to_state="accepted_risk", reason="ok", owner="bob", expires_at=later.replace(tzinfo=None)),
        dict(to_state="false_positive"),  # no reason
        dict(to_state="false_positive", reason="x", expires_at=T0 - timedelta(days=1)),
        dict(to_state="open", owner="bob"),
        dict(to_state="open", expires_at=later),
        dict(to_state="fixed", reason="done"),  # the scans' to set
        dict(to_state="wontfix", reason="x"),
        dict(to_state="false_positive", reason="x" * 5000),
    ]
    for kwargs in refused:
        with pytest.raises(FindingsError) as err:
            store.triage(view.id, actor="alice", **kwargs)
        assert err.value.code is ErrorCode.TRIAGE_INVALID, kwargs
    with pytest.raises(FindingsError) as err:
        store.triage(view.id, "false_positive", actor=" ", reason="x")
    assert err.value.code is ErrorCode.TRIAGE_INVALID
    with pytest.raises(FindingsError) as err:
        store.triage(987654, "false_positive", actor="alice", reason="x")
    assert err.value.code is ErrorCode.FINDING_NOT_FOUND
    assert store.history(view.id) == []  # nothing refused was written
    assert store.get(view.id).state is FindingState.OPEN


def test_triage_changes_state_and_keeps_every_change_in_the_history(store, clock):
    store.record_scan(scan("test_a"), [finding(1), finding(2)])
    view = everything(store)[0]
    expiry = T0 + timedelta(days=30)
    clock.now = T0 + timedelta(minutes=1)
    accepted = store.triage(view.id, "accepted_risk", actor="alice", reason=" vendored code ", owner="bob",
                            expires_at=expiry)
    assert (accepted.state, accepted.effective_state) == (FindingState.ACCEPTED_RISK, FindingState.ACCEPTED_RISK)
    assert (accepted.triage_reason, accepted.triage_owner, accepted.expires_at) == ("vendored code", "bob", expiry)
    assert (accepted.triaged_by, accepted.triaged_at) == ("alice", T0 + timedelta(minutes=1))
    clock.now = T0 + timedelta(minutes=2)
    store.triage(view.id, "false_positive", actor="carol", reason="the input is a constant")
    clock.now = T0 + timedelta(minutes=3)
    reopened = store.triage(view.id, "open", actor="dave", reason="it is reachable after all")
    assert reopened.state is FindingState.OPEN
    assert (reopened.triage_owner, reopened.expires_at) == (None, None)
    history = store.history(view.id)
    assert [(h.actor, h.from_state, h.to_state, h.reason, h.owner, h.expires_at, h.at, h.scan_test_id)
            for h in history] == [
        ("alice", FindingState.OPEN, FindingState.ACCEPTED_RISK, "vendored code", "bob", expiry,
         T0 + timedelta(minutes=1), None),
        ("carol", FindingState.ACCEPTED_RISK, FindingState.FALSE_POSITIVE, "the input is a constant", None, None,
         T0 + timedelta(minutes=2), None),
        ("dave", FindingState.FALSE_POSITIVE, FindingState.OPEN, "it is reachable after all", None, None,
         T0 + timedelta(minutes=3), None)]
    assert store.history(everything(store)[1].id) == []


def test_an_accepted_risk_past_its_expiry_counts_as_open_again(store, clock):
    store.record_scan(scan("test_a"), [finding(i) for i in range(3)])
    views = everything(store)
    expiry = T0 + timedelta(days=7)
    store.triage(views[0].id, "accepted_risk", actor="alice", reason="until the fix ships", owner="bob",
                 expires_at=expiry)
    store.triage(views[1].id, "false_positive", actor="alice", reason="test data", expires_at=expiry)

    def states() -> dict[int, FindingState]:
        return {v.id: v.effective_state for v in everything(store)}

    def listed(state: FindingState) -> set[int]:
        return {v.id for v in everything(store, FindingFilter(states=frozenset({state})))}

    assert states() == {views[0].id: FindingState.ACCEPTED_RISK, views[1].id: FindingState.FALSE_POSITIVE,
                        views[2].id: FindingState.OPEN}
    assert listed(FindingState.OPEN) == {views[2].id}
    assert listed(FindingState.ACCEPTED_RISK) == {views[0].id}
    clock.now = expiry - timedelta(seconds=1)
    assert listed(FindingState.OPEN) == {views[2].id}
    clock.now = expiry  # the moment it passes
    assert set(states().values()) == {FindingState.OPEN}
    assert listed(FindingState.OPEN) == {v.id for v in views}
    assert listed(FindingState.ACCEPTED_RISK) == set() and listed(FindingState.FALSE_POSITIVE) == set()
    view = store.get(views[0].id)
    assert view.state is FindingState.ACCEPTED_RISK and view.expired
    both = FindingFilter(states=frozenset({FindingState.OPEN, FindingState.ACCEPTED_RISK}))
    assert {v.id for v in everything(store, both)} == {v.id for v in views}
    # renewing it with a new expiry suppresses it again
    store.triage(views[0].id, "accepted_risk", actor="alice", reason="one more sprint", owner="bob",
                 expires_at=expiry + timedelta(days=7))
    assert listed(FindingState.OPEN) == {views[1].id, views[2].id}
    assert listed(FindingState.FIXED) == set()


def test_effective_state_and_check_triage_are_plain_functions():
    assert effective_state("accepted_risk", T0, T0) is FindingState.OPEN
    assert effective_state("accepted_risk", T0, T0 - timedelta(microseconds=1)) is FindingState.ACCEPTED_RISK
    assert effective_state("false_positive", None, T0) is FindingState.FALSE_POSITIVE
    assert effective_state("fixed", T0, T0 + timedelta(days=1)) is FindingState.FIXED
    assert check_triage("open", reason=None, owner=None, expires_at=None, actor="a", now=T0) is FindingState.OPEN


def test_inputs_are_checked():
    with pytest.raises(ValueError):
        FindingInput(fingerprint="", tool="bandit", rule_id="B1", severity=Severity.LOW)
    with pytest.raises(ValueError):
        FindingInput(fingerprint="x" * 129, tool="bandit", rule_id="B1", severity=Severity.LOW)
    with pytest.raises(ValueError):
        FindingInput(fingerprint="x", tool="bandit", rule_id="B1", severity="severe")  # type: ignore[arg-type]
    assert FindingInput(fingerprint="x", tool="t", rule_id="r", severity="high").severity is Severity.HIGH  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ScanInfo(test_id="t", workspace_id="w", component_id="c", status=ScanStatus.SUCCEEDED,
                 created_at=datetime(2026, 1, 1))


def test_a_database_that_cannot_be_reached_is_database_unavailable():
    store = FindingsStore(make_engine("postgresql://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 2}))
    try:
        with pytest.raises(FindingsError) as err:
            store.list_findings("acme", "billing")
        assert err.value.code is ErrorCode.DATABASE_UNAVAILABLE
        with pytest.raises(FindingsError) as err:
            store.record_scan(scan("test_a"), [finding(1)])
        assert err.value.code is ErrorCode.DATABASE_UNAVAILABLE
    finally:
        store.close()
