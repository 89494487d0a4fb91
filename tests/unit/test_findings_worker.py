"""The worker's side of the findings store: one logical finding for the reports of several tools on
one weakness at one place (checked on the real overlap of the shipped tools), a scan's recording
and its comparison with its baseline (each case on SQLite and on the tests' own PostgreSQL), the
SARIF results' baselineState, the policy's gate on new findings with triage that expires, the
evidence the attestation covers, and a database out of reach."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from stack.ports import free_port
from tasks.clock import utcnow_iso
from tasks.db import make_engine, upgrade
from tasks.errors import ErrorCode
from tasks.findings import FindingState, ScanInfo
from tasks.findings_store import FindingsStore
from tasks.ids import new_test_id
from tasks.settings import Settings
from tasks.states import ScanStatus
from tests.support.scanrun import FIXTURES, copy_fixture, run_scanner
from workers import findings as worker_findings
from workers import sarif
from workers.bundle import Bundle
from workers.findings import (
    EVIDENCE_PATH,
    Conclusion,
    Equivalences,
    FindingsRecorder,
    ScanContext,
    ScanFindings,
    equivalences,
    group,
)
from workers.pipeline.manifest import ResolvedManifest
from workers.pipeline.policy import evaluate
from workers.scanners.base import Finding
from workers.scanners.registry import all_scanners
from workers.scanners.semgrep import rule_files

# database_url (SQLite and PostgreSQL) and postgres_server
pytest_plugins = ["tests.support.postgres"]

TOOLS = ("bandit", "ruff", "semgrep", "detect-secrets")
SARIF_SCHEMA = json.loads((FIXTURES / "sarif-schema-2.1.0.json").read_text())
SARIF_VALIDATOR = jsonschema.Draft4Validator(SARIF_SCHEMA)
# The second commit of the fixture: one more shell call, one yaml.load less.
NEW_CALL = '\n\ndef run_all(commands):\n    return subprocess.call(" && ".join(commands), shell=True)\n'


# -- the real tools on the fixture, before and after a change -----------------------------------------

@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, list[Finding]]]:
    base = tmp_path_factory.mktemp("sources")
    first = copy_fixture("vulnerable-python", base / "first")
    second = copy_fixture("vulnerable-python", base / "second")
    app = (second / "app.py").read_text()
    # the new function goes before load(): the findings after it move down
    (second / "app.py").write_text(app.replace("\n\ndef load(blob):", NEW_CALL + "\n\ndef load(blob):"))
    db = (second / "db.py").read_text()
    assert "yaml.load(text)" in db
    (second / "db.py").write_text(db.replace("yaml.load(text)", "yaml.safe_load(text)"))
    out: dict[str, dict[str, list[Finding]]] = {}
    scanners = all_scanners()
    for label, source in (("first", first), ("second", second)):
        found: dict[str, list[Finding]] = {}
        for tool in TOOLS:
            reason = scanners[tool].unavailable_reason()
            if reason:
                pytest.fail(f"{tool} must be installed for this test (make tools): {reason}")
            output, _ = run_scanner(scanners[tool], source, base / f"scratch-{label}")
            found[tool] = output.findings
        out[label] = found
    return out


def _places(found: ScanFindings) -> dict[tuple[str | None, int | None], list[tuple[str, str]]]:
    return {(f.lead.finding.path, f.lead.finding.line): sorted((r.tool, r.finding.rule_id) for r in f.reports)
            for f in found.logical.values()}


def test_the_shipped_tools_reports_of_one_weakness_at_one_place_are_one_finding(reports) -> None:
    found = group(reports["first"])
    places = _places(found)
    assert places[("app.py", 9)] == [("bandit", "B602"), ("ruff", "S602"), ("semgrep", "subprocess-shell-with-input")]
    assert places[("app.py", 14)] == [("bandit", "B301"), ("ruff", "S301"), ("semgrep", "unsafe-deserialisation")]
    assert places[("app.py", 19)] == [("bandit", "B105"), ("detect-secrets", "secret-keyword"), ("ruff", "S105"),
                                      ("semgrep", "hardcoded-credential-assignment")]
    assert places[("db.py", 13)] == [("bandit", "B608"), ("ruff", "S608"), ("semgrep", "sql-built-from-strings")]
    assert places[("db.py", 18)] == [("bandit", "B506"), ("ruff", "S506"), ("semgrep", "yaml-unsafe-load")]
    assert places[("db.py", 22)] == [("bandit", "B307"), ("ruff", "S307"), ("semgrep", "dynamic-code-execution")]
    assert places[("db.py", 26)] == [("bandit", "B324"), ("ruff", "S324"), ("semgrep", "weak-hash")]
    assert places[("db.py", 30)] == [("bandit", "B501"), ("ruff", "S501"), ("semgrep", "tls-verification-disabled")]
    assert places[("db.py", 34)] == [("bandit", "B605"), ("ruff", "S605"), ("semgrep", "os-command-with-input")]
    # one secret, reported by two detectors of one tool and by semgrep
    assert places[("settings.py", 4)] == [("detect-secrets", "secret-keyword"), ("detect-secrets", "stripe-access-key"),
                                          ("semgrep", "hardcoded-credential-assignment")]
    assert places[("settings.py", 5)] == [("detect-secrets", "aws-access-key"), ("semgrep", "hardcoded-cloud-key")]
    # bandit's import warnings have no counterpart: findings of their own
    assert places[("app.py", 3)] == [("bandit", "B403")]
    # Every report is in exactly one logical finding, and a logical finding is at one place.
    reports_n = sum(len(v) for v in reports["first"].values())
    assert sum(len(f.reports) for f in found.logical.values()) == reports_n == len(found.of_report)
    assert len(found.logical) == len(places) < reports_n
    for item in found.logical.values():
        assert len({(r.finding.path, r.finding.line) for r in item.reports}) == 1
    # The most severe report speaks for it (bandit calls yaml.load medium, ruff and semgrep high), with
    # the weakness's CWE.
    yaml_load = next(f for f in found.logical.values() if f.lead.finding.line == 18)
    assert yaml_load.severity == "high" and yaml_load.cwe == "CWE-502" and yaml_load.weakness == "unsafe-yaml-load"
    assert found.by_severity()["high"] == sum(1 for f in found.logical.values() if f.severity == "high")


def test_logical_fingerprints_survive_code_moving(reports) -> None:
    first, second = group(reports["first"]), group(reports["second"])
    gone = set(first.logical) - set(second.logical)
    came = set(second.logical) - set(first.logical)
    assert [first.logical[fp].weakness for fp in gone] == ["unsafe-yaml-load"]
    assert [second.logical[fp].weakness for fp in came] == ["command-injection-subprocess-shell"]
    assert second.logical[next(iter(came))].tools == ["bandit", "ruff", "semgrep"]
    # app.py's pickle finding moved down four lines and is the same finding
    pickle_first = next(f for f in first.logical.values() if f.weakness == "unsafe-deserialisation")
    pickle_second = second.logical[pickle_first.fingerprint]
    assert pickle_second.lead.finding.line == pickle_first.lead.finding.line + 4


def _finding(tool: str, rule: str, line: int, snippet: str = "eval(x)", path: str = "m.py",
             severity: str = "high") -> Finding:
    return Finding(tool=tool, rule_id=rule, message=f"{tool} says {rule}", severity=severity, path=path, line=line,
                   snippet=snippet)


def test_the_same_code_on_several_lines_is_one_finding_per_line_across_tools() -> None:
    found = group({"bandit": [_finding("bandit", "B307", 3), _finding("bandit", "B307", 9)],
                   "ruff": [_finding("ruff", "S307", 9), _finding("ruff", "S307", 3)],
                   "semgrep": [_finding("semgrep", "dynamic-code-execution", 9)]})
    assert sorted(_places(found).items()) == [
        (("m.py", 3), [("bandit", "B307"), ("ruff", "S307")]),
        (("m.py", 9), [("bandit", "B307"), ("ruff", "S307"), ("semgrep", "dynamic-code-execution")])]
    # the same weakness in other code, or in another file, is another finding
    other = group({"bandit": [_finding("bandit", "B307", 3, snippet="eval(y)"),
                              _finding("bandit", "B307", 3, path="n.py")]})
    assert len(other.logical) == 2 and not set(other.logical) & set(found.logical)
    # one rule of one tool twice on one line (shellcheck's SC2086 for two variables): two findings
    twice = group({"shellcheck": [_finding("shellcheck", "SC2086", 7, snippet="rm -rf $A/$b")] * 2})
    assert len(twice.logical) == 2 and len(twice.of_report) == 2
    # and a rule named nowhere stays a finding of its own tool (after ruff's alias to bandit)
    lone = group({"bandit": [_finding("bandit", "B607", 3)], "ruff": [_finding("ruff", "S607", 3)],
                  "semgrep": [_finding("semgrep", "some-rule", 3)]})
    assert sorted(f.weakness for f in lone.logical.values()) == ["bandit:B607", "semgrep:some-rule"]


def test_the_equivalences_are_data_naming_rules_the_shipped_tools_have() -> None:
    data = json.loads(worker_findings.EQUIVALENCES_FILE.read_text())
    semgrep_rules = {rule["id"] for path in rule_files() for rule in yaml.safe_load(path.read_text())["rules"]}
    table = equivalences()
    for key, spec in data["weaknesses"].items():
        assert re.fullmatch(r"CWE-\d+", spec["cwe"]), key
        assert spec["title"], key
        for tool, rules in spec["rules"].items():
            assert tool in all_scanners(), (key, tool)
            for rule in rules:
                if tool == "semgrep":
                    assert rule in semgrep_rules, (key, rule)
                elif tool == "bandit":
                    assert re.fullmatch(r"B\d{3}", rule), (key, rule)
                if rule != "*":
                    assert table.weakness(tool, rule).key == key
    # Every semgrep rule of the project that has a bandit counterpart is named
    assert {r for r in semgrep_rules if table.weakness("semgrep", r).key.startswith("semgrep:")} == {
        "tls-warnings-silenced"}
    assert table.canonical("ruff", "S602") == ("bandit", "B602")
    assert table.canonical("ruff", "S6021") == ("ruff", "S6021")
    with pytest.raises(ValueError, match="two weaknesses"):
        Equivalences({"weaknesses": {"a": {"rules": {"bandit": ["B1"]}}, "b": {"rules": {"bandit": ["B1"]}}}})


# -- recording, comparing, gating: on SQLite and PostgreSQL ------------------------------------------------

@dataclass
class Clock:
    offset: timedelta = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture()
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moved = Clock()
    monkeypatch.setattr(worker_findings, "CLOCK", moved)
    return moved


@pytest.fixture()
def recorder(database_url: str, tmp_path: Path, clock: Clock) -> Iterator[FindingsRecorder]:
    recorder = FindingsRecorder(Settings(database_url=database_url, artifact_root=str(tmp_path / "artifacts")))
    try:
        yield recorder
    finally:
        recorder.store().close()


def _manifest(**rules: Any) -> ResolvedManifest:
    return ResolvedManifest(text="{}", digest="d", parsed=None, profile_requested="gate", profile_resolved="gate",
                            tools=list(TOOLS), **rules)


def _conclude(recorder: FindingsRecorder, found: ScanFindings, **fields: Any) -> Conclusion:
    values: dict[str, Any] = {"test_id": new_test_id(), "workspace_id": "acme", "component_id": "shop",
                              "status": ScanStatus.SUCCEEDED, "created_at": utcnow_iso(), "findings": found,
                              "branch": "main", "commit": "c0ffee", "default_branch": "main"}
    values.update(fields)
    return recorder.conclude(ScanContext(**values))


def _bundle(tmp_path: Path, test_id: str, reports: dict[str, list[Finding]]) -> Bundle:
    bundle = Bundle(str(tmp_path / "artifacts"), test_id, "t")
    for tool, found in reports.items():
        bundle.write_json(f"reports/sast/{tool}.sarif.json", sarif.build(tool, "1.0", found))
    return bundle


def test_a_scan_is_compared_with_its_baseline_and_gated_on_what_it_introduced(recorder, reports, clock,
                                                                               tmp_path) -> None:
    first, second = group(reports["first"]), group(reports["second"])
    gate = _manifest(new_findings={"high": 0})

    one = _conclude(recorder, first)
    assert one.recorded and one.warnings == [] and one.baseline is None
    assert one.summary_fields()["baseline"] is None
    assert one.summary_fields()["diff"]["new"] == first.by_severity()  # no baseline: every finding is new
    assert not evaluate(gate, {}, one)["passed"]

    two = _conclude(recorder, second)
    assert two.baseline is not None and two.baseline.test_id == one.test_id
    fields = two.summary_fields()
    assert fields["baseline"] == {"test_id": one.test_id, "commit": "c0ffee", "branch": "main"}
    diff = fields["diff"]
    assert diff["new"] == {"critical": 0, "high": 1, "medium": 0, "low": 0, "info": 0}
    assert diff["fixed"] == {"critical": 0, "high": 1, "medium": 0, "low": 0, "info": 0}
    assert sum(diff["updated"].values()) == 0
    assert sum(diff["unchanged"].values()) == len(second.logical) - 1

    verdict = evaluate(gate, {}, two)
    assert verdict["passed"] is False
    assert verdict["new_findings"] == {"thresholds": {"high": 0}, "baseline_test_id": one.test_id,
                                       "counts": {"critical": 0, "high": 1, "medium": 0, "low": 0, "info": 0}}
    [violation] = verdict["violations"]
    assert violation["rule"] == "new_findings" and violation["count"] == 1 and violation["threshold"] == 0
    [offending] = violation["findings"]
    new_fp = two.diff.new[0].fingerprint
    assert offending["fingerprint"] == new_fp and offending["tools"] == ["bandit", "ruff", "semgrep"]
    assert (offending["path"], offending["line"], offending["severity"]) == ("app.py", 13, "high")
    assert {s["tool"] for s in offending["sources"]} == {"bandit", "ruff", "semgrep"}

    # Triage takes it out of the gate (and out of the totals), until its expiry passes.
    store = recorder.store()
    finding_id = two.diff.new[0].finding_id
    store.triage(finding_id, FindingState.ACCEPTED_RISK, actor="alice", reason="sandboxed input", owner="team-a",
                 expires_at=clock() + timedelta(days=1))
    three = _conclude(recorder, second, baseline=one.test_id)
    assert three.baseline is not None and three.baseline.test_id == one.test_id and set(three.suppressions) == {new_fp}
    verdict = evaluate(gate, {}, three)
    assert verdict["passed"] is True and verdict["new_findings"]["counts"]["high"] == 0
    assert [(s["fingerprint"], s["state"], s["reason"], s["owner"]) for s in verdict["suppressed"]] == [
        (new_fp, "accepted_risk", "sandboxed input", "team-a")]
    totals = evaluate(_manifest(thresholds={"high": 0}), {}, three)
    high = second.by_severity()["high"]
    assert totals["counts"]["high"] == high - 1
    assert totals["violations"][0]["rule"] == "thresholds" and totals["violations"][0]["count"] == high - 1
    assert new_fp not in {f["fingerprint"] for f in totals["violations"][0]["findings"]}

    clock.offset = timedelta(days=2)
    four = _conclude(recorder, second, baseline=one.test_id)
    assert four.suppressions == {} and set(four.expired) == {new_fp}
    verdict = evaluate(gate, {}, four)
    assert verdict["passed"] is False and verdict["violations"][0]["findings"][0]["fingerprint"] == new_fp
    assert verdict["expired_suppressions"][0]["fingerprint"] == new_fp


def test_the_bundle_says_what_was_compared_and_waived_in_valid_sarif(recorder, reports, clock, tmp_path) -> None:
    first, second = group(reports["first"]), group(reports["second"])
    one = _conclude(recorder, first)
    baseline_bundle = tmp_path / "artifacts" / one.test_id / "reports" / "signing"
    baseline_bundle.mkdir(parents=True)
    (baseline_bundle / "attestation.intoto.json").write_text('{"payload": "signed"}\n')
    pickle = next(f for f in second.logical.values() if f.weakness == "unsafe-deserialisation")
    store = recorder.store()
    ids = {e.fingerprint: e.finding_id for e in one.diff.new}
    store.triage(ids[pickle.fingerprint], FindingState.FALSE_POSITIVE, actor="bob", reason="trusted blobs only")

    two = _conclude(recorder, second)
    bundle = _bundle(tmp_path, two.test_id, reports["second"])
    two.write(bundle)
    states: dict[str, int] = {}
    for tool in reports["second"]:
        doc = json.loads((bundle.staging / f"reports/sast/{tool}.sarif.json").read_text())
        assert [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in SARIF_VALIDATOR.iter_errors(doc)] == []
        for result in doc["runs"][0]["results"]:
            states[result["baselineState"]] = states.get(result["baselineState"], 0) + 1
            assert result["fingerprints"][sarif.LOGICAL_KEY] in second.logical or result["baselineState"] == "absent"
            if result["fingerprints"][sarif.LOGICAL_KEY] == pickle.fingerprint:
                assert result["suppressions"] == [{
                    "kind": "external", "status": "accepted", "justification": "trusted blobs only",
                    "properties": {"state": "false_positive", "owner": None, "expiresAt": None, "triagedBy": "bob"}}]
            else:
                assert "suppressions" not in result
    # every report of the new finding is new; the fixed finding is listed once, by the tool that spoke for it
    assert states == {"new": 3, "unchanged": sum(len(v) for v in reports["second"].values()) - 3, "absent": 1}

    evidence = json.loads((bundle.staging / EVIDENCE_PATH).read_text())
    assert evidence["baseline"]["test_id"] == one.test_id
    assert evidence["baseline"]["bundle"]["path"] == "reports/signing/attestation.intoto.json"
    assert [f["fingerprint"] for f in evidence["new"]] == [two.diff.new[0].fingerprint]
    assert [f["rule_id"] for f in evidence["fixed"]] in (["S506"], ["yaml-unsafe-load"])
    [applied] = evidence["suppressions"]["applied"]
    assert applied["fingerprint"] == pickle.fingerprint and applied["state"] == "false_positive"
    predicate = two.predicate()
    assert predicate["baseline"]["bundle_digest"] == evidence["baseline"]["bundle"]
    assert predicate["diff"] == two.diff.counts()
    assert predicate["suppressions"]["sha256"] == evidence["suppressions"]["sha256"] == two.applied_digest()
    assert predicate["suppressions"]["applied"][0]["sha256"] == applied["sha256"]
    assert predicate["evidence"]["path"] == EVIDENCE_PATH and len(predicate["evidence"]["sha256"]) == 64


def test_a_named_baseline_that_cannot_be_used_compares_with_nothing_and_says_so(recorder, reports) -> None:
    found = group(reports["first"])
    failed = _conclude(recorder, found, status=ScanStatus.FAILED)
    for baseline, code in (("test_000000000000", "baseline_not_found"), (failed.test_id, "scan_not_succeeded")):
        conclusion = _conclude(recorder, found, baseline=baseline)
        assert conclusion.recorded and conclusion.baseline is None
        assert [w["code"] for w in conclusion.warnings] == [code]
        assert conclusion.summary_fields()["diff"]["new"] == found.by_severity()
    # "none" compares with nothing, without a warning; "auto" never takes a FAILED scan
    none = _conclude(recorder, found, baseline="none")
    assert none.baseline is None and none.warnings == []
    auto = _conclude(recorder, found)
    assert auto.baseline is not None and auto.baseline.test_id == none.test_id


def test_auto_takes_the_baseline_branch_and_only_a_scan_created_before(recorder, reports) -> None:
    found = group(reports["first"])
    start = datetime.now(UTC)
    main = _conclude(recorder, found, created_at=(start - timedelta(minutes=5)).isoformat())
    feature = _conclude(recorder, found, branch="feature", created_at=(start - timedelta(minutes=4)).isoformat())
    assert feature.baseline is not None and feature.baseline.test_id == main.test_id  # main: the default branch
    on_other = _conclude(recorder, found, branch="feature", baseline_branch="feature",
                         created_at=(start - timedelta(minutes=3)).isoformat())
    assert on_other.baseline is not None and on_other.baseline.test_id == feature.test_id
    # A scan created earlier that finishes later compares with what came before it, not after.
    earlier = _conclude(recorder, found, created_at=(start - timedelta(minutes=10)).isoformat())
    assert earlier.baseline is None
    # A source without a branch (a directory) compares with the component's latest branchless scan.
    plain = _conclude(recorder, found, branch=None, commit=None, default_branch=None)
    assert plain.baseline is None
    again = _conclude(recorder, found, branch=None, commit=None, default_branch=None)
    assert again.baseline is not None and again.baseline.test_id == plain.test_id


def test_a_commit_scanned_without_its_branch_marks_nothing_fixed_and_is_no_baseline(recorder, reports) -> None:
    found = group(reports["first"])
    start = datetime.now(UTC)
    main = _conclude(recorder, found, created_at=(start - timedelta(minutes=5)).isoformat())
    # A commit asked for alone that the default branch does not hold is checked out with no branch.
    pinned = _conclude(recorder, group([]), branch=None, created_at=(start - timedelta(minutes=4)).isoformat())
    assert pinned.baseline is not None and pinned.baseline.test_id == main.test_id  # compared with main
    page = recorder.store().list_findings("acme", "shop")
    assert page.items and all(item.state != "fixed" for item in page.items)  # main's findings stay open
    later = _conclude(recorder, found, created_at=(start - timedelta(minutes=3)).isoformat())
    assert later.baseline is not None and later.baseline.test_id == main.test_id  # not the pinned scan


def test_a_scan_recorded_then_failed_is_never_a_baseline(recorder, reports) -> None:
    found = group(reports["first"])
    one = _conclude(recorder, found)
    recorder.record_failed(one)
    ref = recorder.store().scan(one.test_id)
    assert ref is not None and ref.status == ScanStatus.FAILED
    assert _conclude(recorder, found).baseline is None


def test_a_database_out_of_reach_loses_no_scan_and_the_gate_fails_closed(tmp_path, reports) -> None:
    settings = Settings(database_url=f"postgresql://nobody@127.0.0.1:{free_port()}/nothing",
                        artifact_root=str(tmp_path / "artifacts"))
    found = group(reports["first"])
    conclusion = _conclude(FindingsRecorder(settings), found)
    assert not conclusion.recorded and conclusion.diff is None
    assert [w["code"] for w in conclusion.warnings] == ["database_unavailable"]
    assert conclusion.summary_fields() == {"baseline": None, "diff": None}
    verdict = evaluate(_manifest(new_findings={"critical": 0}), {}, conclusion)
    assert verdict["passed"] is False and verdict["violations"][0]["rule"] == "new_findings"
    assert verdict["new_findings"]["counts"] is None
    # a profile without the gate is judged on its totals as before
    assert evaluate(_manifest(thresholds={"high": 100}), {}, conclusion)["passed"] is True
    # the SARIF files still name each result's logical finding, without a baselineState
    bundle = _bundle(tmp_path, conclusion.test_id, reports["first"])
    conclusion.write(bundle)
    doc = json.loads((bundle.staging / "reports/sast/bandit.sarif.json").read_text())
    assert all("baselineState" not in r and r["fingerprints"][sarif.LOGICAL_KEY] for r in doc["runs"][0]["results"])
    assert json.loads((bundle.staging / EVIDENCE_PATH).read_text())["recorded"] is False


def test_the_store_lists_a_components_triaged_findings_with_their_effective_state(database_url) -> None:
    upgrade(database_url)
    now = datetime.now(UTC)
    store = FindingsStore(make_engine(database_url), lambda: now)
    try:
        from tasks.findings import FindingInput

        inputs = [FindingInput(fingerprint=f"fp{i}", tool="bandit", rule_id="B602", severity="high", path="a.py",
                               line=i) for i in range(3)]
        store.record_scan(ScanInfo("test_aaaaaaaaaaaa", "acme", "shop", ScanStatus.SUCCEEDED, now, "main"), inputs)
        ids = {f.fingerprint: f.id for f in store.list_findings("acme", "shop").items}
        store.triage(ids["fp0"], "accepted_risk", actor="a", reason="r", owner="o", expires_at=now + timedelta(hours=1))
        store.triage(ids["fp1"], "false_positive", actor="a", reason="r")
        assert [(v.fingerprint, v.effective_state) for v in store.triaged("acme", "shop")] == [
            ("fp0", "accepted_risk"), ("fp1", "false_positive")]
        assert store.triaged("acme", "other") == []
        store.clock = lambda: now + timedelta(hours=2)
        assert [(v.fingerprint, v.effective_state, v.expired) for v in store.triaged("acme", "shop")] == [
            ("fp0", "open", True), ("fp1", "false_positive", False)]
        assert store.baseline_for("acme", "shop", "main", created_before=now) is None
        assert store.baseline_for("acme", "shop", "main", created_before=now + timedelta(seconds=1)) is not None
    finally:
        store.close()


def test_an_unreachable_database_is_a_coded_warning_not_an_exception(tmp_path) -> None:
    recorder = FindingsRecorder(Settings(database_url=f"postgresql://x@127.0.0.1:{free_port()}/x",
                                         artifact_root=str(tmp_path)))
    conclusion = recorder.conclude(ScanContext(test_id=new_test_id(), workspace_id="w", component_id="c",
                                               status=ScanStatus.SUCCEEDED, created_at=utcnow_iso(),
                                               findings=ScanFindings()))
    assert conclusion.warnings[0]["code"] == ErrorCode.DATABASE_UNAVAILABLE
