"""The real ``certus-assurance`` command against the real API (gunicorn, Redis, the findings store on
SQLite and on the tests' own PostgreSQL): listing findings with filters and pages, triage with the
roles that may and may not, a finding's history, the diff of two scans, and the new/fixed line of
``status`` and ``logs --follow`` for a finished scan whose summary carries its comparison."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
import requests

from tasks.db import make_engine, upgrade
from tasks.events import encode_event, stream_key
from tasks.findings import MAX_TOOL, FindingInput, ScanInfo
from tasks.findings_store import FindingsStore
from tasks.states import ScanStatus, Severity
from tasks.store import ScanStore, StreamAppend
from tests.support.cli import CliResult, run_cli
from tests.support.records import scan_record
from tests.support.service import Service, base_env

# postgres_server (one per session)
pytest_plugins = ["tests.support.postgres"]

BASE, HEAD = "test_0000000000a1", "test_0000000000b2"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WHERE = ["--workspace", "acme", "--component", "billing"]


def _finding(n: int, severity: Severity, message: str | None = None) -> FindingInput:
    return FindingInput(fingerprint=f"fp{n:04d}", tool="bandit", rule_id=f"B6{n:02d}", severity=severity,
                        path=f"billing/m{n}.py", line=n, message=message or f"finding {n}", cwe="CWE-78")


class Site:
    def __init__(self, service: Service, database_url: str) -> None:
        self.service = service
        self.store = FindingsStore(make_engine(database_url))
        self.triager = service.create_key("triager", ["acme"], name="sec-review")
        self.reader = service.create_key("reader", ["acme"], name="dashboard")
        self.publisher = service.create_key("publisher", ["acme"], name="ci")

    def cli(self, *args: str, key: str | None = None) -> CliResult:
        return run_cli(*args, url=self.service.base_url, api_key=key or self.reader)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("findings-cli")
    if request.param == "sqlite":
        database_url = f"sqlite:///{tmp / 'certus.db'}"
    else:
        server: Any = request.getfixturevalue("postgres_server")
        database_url = server.create_database()
    upgrade(database_url)  # the API also upgrades on start; before it, so the test's writes find tables
    # A Redis database of its own: the session service's workers, on another findings store, must not
    # take these scans.
    own_redis = redis_url.rsplit("/", 1)[0] + "/10"
    service = Service(env=base_env(tmp, own_redis, CERTUS_ASSURANCE_DATABASE_URL=database_url), workdir=tmp)
    try:
        service.start_api()
        site = Site(service, database_url)
        _record_scans(site.store)
        yield site
        site.store.close()
    finally:
        service.stop()


def _record_scans(store: FindingsStore) -> None:
    """BASE: findings 1-6; HEAD (against BASE): 2-6 and a new high 7 (message with a terminal escape)."""
    base = [_finding(1, Severity.HIGH), _finding(2, Severity.HIGH), *(_finding(n, Severity.LOW) for n in range(3, 7))]
    head = [*base[1:], _finding(7, Severity.HIGH, "subprocess call with shell=True \x1b[2J")]
    for test_id, findings, baseline, hours in ((BASE, base, None, 0), (HEAD, head, BASE, 1)):
        store.record_scan(ScanInfo(test_id=test_id, workspace_id="acme", component_id="billing",
                                   status=ScanStatus.SUCCEEDED, created_at=T0 + timedelta(hours=hours), branch="main",
                                   commit=f"{hours}a2b3c4d".ljust(40, "0"), baseline_test_id=baseline,
                                   on_baseline_branch=True), findings)


def _ids(site: Site) -> dict[str, int]:
    listed = site.cli("findings", *WHERE, "--all", "--json")
    assert listed.code == 0, listed.err
    return {item["fingerprint"]: item["id"] for item in listed.json()["items"]}


def test_findings_lists_filters_and_pages(site):
    table = site.cli("findings", *WHERE)
    assert table.code == 0, table.err
    lines = table.out.splitlines()
    assert lines[0].split() == ["ID", "SEVERITY", "STATE", "TOOL:RULE", "LOCATION", "MESSAGE"]
    assert len(lines) == 1 + 7 and "billing/m7.py:7" in table.out and "bandit:B607" in table.out
    assert "\\x1b[2J" in table.out and "\x1b" not in table.out  # a scanned repository's text, escaped

    highs = site.cli("findings", *WHERE, "--severity", "high", "--state", "open,fixed", "--json")
    found = highs.json()["items"]
    assert {(f["fingerprint"], f["effective_state"]) for f in found} == {
        ("fp0001", "fixed"), ("fp0002", "open"), ("fp0007", "open")}
    new = site.cli("findings", *WHERE, "--new-since", BASE, "--json").json()["items"]
    assert [f["fingerprint"] for f in new] == ["fp0007"]
    assert [f["fingerprint"] for f in site.cli("findings", *WHERE, "-s", "SHELL=true", "--json").json()["items"]] \
        == ["fp0007"]

    first = site.cli("findings", *WHERE, "--limit", "3")
    assert first.code == 0 and "(more: --cursor f1." in first.out
    cursor = first.out.rsplit("--cursor ", 1)[1].split()[0]
    second = site.cli("findings", *WHERE, "--limit", "3", "--cursor", cursor, "--json").json()
    every = site.cli("findings", *WHERE, "--limit", "3", "--all", "--json").json()
    assert len(every["items"]) == 7 and every["next_cursor"] is None
    assert [f["id"] for f in every["items"]][3:6] == [f["id"] for f in second["items"]]

    refused = site.cli("findings", "--workspace", "beta", "--component", "billing")
    assert refused.code == 5 and "404 workspace_not_found" in refused.err
    bad = site.cli("findings", *WHERE, "--state", "closed")
    assert bad.code == 5 and "422 validation_error" in bad.err and "state" in bad.err


def test_triage_needs_a_triager_and_the_history_names_each_change(site):
    ids = _ids(site)
    finding = str(ids["fp0007"])
    expires = (datetime.now(UTC) + timedelta(days=60)).date().isoformat()
    args = ["triage", finding, "--state", "accepted_risk", "--reason", "admin console only; SEC-142",
            "--owner", "alice@example.com", "--expires", expires]
    for key in (site.reader, site.publisher):  # a CI key may not waive its own gate
        refused = site.cli(*args, key=key)
        assert refused.code == 5 and "403 forbidden" in refused.err, refused.err
    incomplete = site.cli("triage", finding, "--state", "accepted_risk", "--reason", "later", key=site.triager)
    assert incomplete.code == 5 and "422 triage_invalid" in incomplete.err
    assert site.cli(*args[:-1], "31/01/2027", key=site.triager).code == 2

    done = site.cli(*args, key=site.triager)
    assert done.code == 0, done.err
    assert done.out.strip() == (f"finding {finding} is now accepted_risk until {expires}T00:00:00Z, "
                                "owner alice@example.com")
    accepted = site.cli("findings", *WHERE, "--state", "accepted_risk", "--json").json()["items"]
    assert [f["id"] for f in accepted] == [ids["fp0007"]]
    back = site.cli("triage", finding, "--state", "open", "--reason", "fixed upstream instead", key=site.triager)
    assert back.code == 0 and "is now open" in back.out

    shown = site.cli("finding", finding)
    assert shown.code == 0, shown.err
    history = [line.strip() for line in shown.out.split("  history:\n", 1)[1].splitlines()]
    assert len(history) == 2
    assert "open → accepted_risk  by sec-review (key " in history[0] and "owner alice@example.com" in history[0]
    assert "accepted_risk → open  by sec-review (key " in history[1] and "fixed upstream instead" in history[1]
    as_json = site.cli("finding", finding, "--json").json()
    assert as_json["state"] == "open" and [e["to_state"] for e in as_json["history"]] == ["accepted_risk", "open"]
    assert site.cli("finding", "999999").code == 5


def test_diff_of_two_scans(site):
    result = site.cli("diff", HEAD, "--against", BASE)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == f"{HEAD}: 1 new (1 high), 1 fixed, 5 unchanged vs {BASE} (main @ 0a2b3c4)"
    assert lines[1] == "new:" and "billing/m7.py:7" in lines[2] and lines[3] == "fixed:" and "m1.py:1" in lines[4]
    assert len(lines) == 5  # unchanged ones only with --unchanged
    default = site.cli("diff", HEAD, "--unchanged", "--json").json()
    assert default["against"] == BASE and len(default["unchanged"]) == 5
    assert default["counts"]["new"]["high"] == 1 and default["totals"]["fixed"] == 1
    unknown = site.cli("diff", HEAD, "--against", "test_ffffffffffff")
    assert unknown.code == 5 and "404 scan_not_found" in unknown.err
    outsider = site.service.create_key("admin", ["beta"])
    assert site.cli("diff", HEAD, "--against", BASE, key=outsider).code == 5


def test_status_and_follow_show_the_comparison_with_the_baseline(site, redis_url):
    """A finished scan recorded as the worker leaves it: its summary carries the baseline and the
    counts of the comparison, and so does its scan_complete event."""
    summary: dict[str, Any] = {
        "total": 247, "by_severity": {"high": 3, "medium": 40, "low": 204}, "by_tool": {"bandit": {"high": 3}},
        "baseline": {"test_id": BASE, "commit": "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d", "branch": "main"},
        "diff": {"new": {"critical": 0, "high": 1, "medium": 0, "low": 1, "info": 0},
                 "unchanged": {"critical": 0, "high": 2, "medium": 40, "low": 198, "info": 0},
                 "fixed": {"critical": 0, "high": 1, "medium": 2, "low": 2, "info": 0}}}
    policy = {"passed": False, "thresholds": {"high": 0}, "violations": [
        {"severity": "high", "threshold": 0, "count": 1, "message": "1 new high findings exceed the threshold of 0"}]}
    client = redis.Redis.from_url(site.service.env["CERTUS_ASSURANCE_REDIS_URL"], decode_responses=True)
    store = ScanStore(client)
    record = scan_record(workspace_id="acme", component_id="billing", status=ScanStatus.QUEUED)
    store.create(record, event=StreamAppend(stream_key(record.test_id), "*", encode_event(
        "phase", {"phase": "queued", "message": "scan accepted and queued"}), 1000))
    complete = encode_event("scan_complete", {"status": "SUCCEEDED", "manifest_digest": None, "bundle": None,
                                              "summary": summary})
    moved = store.transition(record.test_id, ScanStatus.SUCCEEDED, allowed_from=[ScanStatus.QUEUED],
                             event=StreamAppend(stream_key(record.test_id), "*", complete, 1000),
                             summary=summary, policy=policy, completed_at=time.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert moved.ok
    line = f"2 new (1 high, 1 low), 5 fixed, 240 unchanged vs {BASE} (main @ 1a2b3c4)"

    status = site.cli("status", record.test_id)
    assert status.code == 0 and f"  baseline:  {line}" in status.out
    followed = site.cli("logs", record.test_id, "--follow", "--transport", "poll")
    assert followed.code == 1, followed.err  # the policy failed: exit 1, as before
    tail = followed.out.splitlines()
    assert line in tail and tail.index(line) > tail.index(next(t for t in tail if "■ scan SUCCEEDED" in t))
    assert tail[-1] == f"{record.test_id}: SUCCEEDED (exit 1)"
    as_json = site.cli("logs", record.test_id, "--follow", "--transport", "poll", "--json").json_lines()
    assert as_json[-1]["diff"] == summary["diff"] and as_json[-1]["baseline"] == summary["baseline"]


def test_the_longest_filters_fit_in_one_request_line(site: Site) -> None:
    """Every filter at its longest, each character four bytes of UTF-8 (twelve once percent-encoded):
    the request line still reaches the API (a JSON answer, not gunicorn's 414)."""
    from app.schemas import findings as query

    wide = "\U0001d54f"  # 𝕏
    params = {"workspace_id": "acme", "component_id": "billing", "state": "open," * 19 + "open",
              "severity": "high," * 19 + "high", "tool": wide * MAX_TOOL, "rule": wide * query.MAX_RULE_FILTER,
              "path": wide * query.MAX_PATH, "q": wide * query.MAX_TEXT, "cursor": "x" * 200,
              "new_since": "test_0123456789ab", "limit": "500"}
    answer = requests.get(f"{site.service.base_url}/v1/findings", params=params, timeout=30,
                          headers={"Authorization": f"Bearer {site.reader}"})
    assert answer.status_code != 414
    assert "error" in answer.json() or "items" in answer.json()
