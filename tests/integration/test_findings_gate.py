"""The gate on what a change introduced, end to end, on SQLite and on PostgreSQL: a real API and a
real Celery worker scan two commits of a git repository served by a git daemon. The second commit
adds one ``subprocess.call(..., shell=True)`` and removes one ``yaml.load``: compared with the first
(``baseline: auto``) it has exactly one new high finding, one fixed, and every other unchanged. A
manifest with ``new_findings: {high: 0}`` fails its policy (the CLI's ``--follow`` exits 1), passes
once the new finding is triaged ``accepted_risk`` with an expiry, and fails again once the workers'
clock has passed that expiry (a worker plugin of the tests, ``tests.support.findings_clock``, moves
it). The SARIF results carry their baselineState, and the signed attestation covers the baseline,
its bundle's digest, the diff and the triage applied."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import jsonschema
import psycopg
import pytest

from tasks.bundle_verifier import ATTESTATION_PATH, sha256_file
from tasks.db import make_engine
from tasks.findings import FindingState
from tasks.findings_store import FindingsStore
from tests.support.cli import run_cli
from tests.support.findings_clock import ENV as CLOCK_ENV
from tests.support.findings_clock import move
from tests.support.gitrepos import GitDaemon, commit_files, make_repo
from tests.support.service import Service, base_env
from workers.sarif import LOGICAL_KEY

pytestmark = pytest.mark.integration
# database_url's PostgreSQL (postgres_server)
pytest_plugins = ["tests.support.postgres"]

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "vulnerable-python"
SARIF_VALIDATOR = jsonschema.Draft4Validator(
    json.loads((FIXTURE.parent / "sarif-schema-2.1.0.json").read_text()))
TOOLS = ["bandit", "ruff", "semgrep", "detect-secrets"]
MANIFEST = {"profiles": [{"name": "gate", "tools": TOOLS, "new_findings": {"high": 0}}]}
WORKSPACE, COMPONENT = "ws-gate", "shop"
NEW_CALL = '\n\ndef run_all(commands):\n    return subprocess.call(" && ".join(commands), shell=True)\n'
REDIS_DB = {"sqlite": 12, "postgresql": 15}


@dataclass
class Site:
    service: Service
    database_url: str
    clock_file: Path
    url: str
    first: str
    second: str
    tmp: Path


def _own_db(redis_url: str, db: int) -> str:
    parts = urlsplit(redis_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, redis_url: str,
         git_server: GitDaemon) -> Iterator[Site]:
    kind = request.param
    tmp = tmp_path_factory.mktemp(f"gate-{kind}")
    postgres = request.getfixturevalue("postgres_server") if kind == "postgresql" else None
    database_url = postgres.create_database() if postgres else f"sqlite:///{tmp / 'certus.db'}"
    files = {p.relative_to(FIXTURE).as_posix(): p.read_text() for p in FIXTURE.rglob("*") if p.is_file()}
    repo = make_repo(git_server.base, f"gate-{kind}", files)
    first = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                           check=True).stdout.strip()
    second = commit_files(repo, {
        "app.py": files["app.py"].replace("\n\ndef load(blob):", NEW_CALL + "\n\ndef load(blob):"),
        "db.py": files["db.py"].replace("yaml.load(text)", "yaml.safe_load(text)")},
        "one more shell call, one yaml.load less")
    clock_file = tmp / "clock"
    service = Service(env=base_env(
        tmp, _own_db(redis_url, REDIS_DB[kind]), CERTUS_ASSURANCE_DATABASE_URL=database_url,
        CERTUS_ASSURANCE_WORKER_PLUGINS="tests.support.findings_clock", **{CLOCK_ENV: str(clock_file)}),
        workdir=tmp)
    try:
        service.start_worker(f"gate-{kind}", concurrency=1)
        service.start_api()
        service.wait_workers(1)
        yield Site(service, database_url, clock_file, git_server.url(f"gate-{kind}"), first, second, tmp)
    finally:
        service.stop()
        if postgres is not None:
            with contextlib.suppress(psycopg.Error):
                postgres.drop_database(database_url.rsplit("/", 1)[1])


def _body(site: Site, commit: str, **extra: Any) -> dict[str, Any]:
    return {"workspace_id": WORKSPACE, "component_id": COMPONENT, "assessment_id": "gate-1", "git_url": site.url,
            "commit": commit, "profile": "gate", "manifest": MANIFEST, **extra}


def _follow(site: Site, body: dict[str, Any], name: str) -> tuple[int, str, dict[str, Any]]:
    """``certus-assurance scan --file BODY --follow``: its exit code, its output and the scan's record."""
    path = site.tmp / f"{name}.json"
    path.write_text(json.dumps(body))
    key = site.service.http.headers["Authorization"].split(" ", 1)[1]
    done = run_cli("scan", "--file", str(path), "--follow", "--quiet", url=site.service.base_url, api_key=key,
                   timeout=600)
    match = re.search(r"submitted (test_[0-9a-f]{12})", done.out)
    assert match, (done.code, done.out, done.err)
    return done.code, done.out, site.service.status(match.group(1))


def _statement(bundle: Path) -> dict[str, Any]:
    envelope = json.loads((bundle / ATTESTATION_PATH).read_text())
    return dict(json.loads(base64.b64decode(envelope["payload"])))


def _sarif_results(bundle: Path) -> list[dict[str, Any]]:
    results = []
    for tool in TOOLS:
        doc = json.loads((bundle / f"reports/sast/{tool}.sarif.json").read_text())
        assert [e.message for e in SARIF_VALIDATOR.iter_errors(doc)] == [], tool
        results += [{**r, "tool": tool} for r in doc["runs"][0]["results"]]
    return results


def test_the_gate_fails_on_what_a_change_introduced_until_it_is_triaged_and_again_once_that_expires(site):
    svc = site.service
    # -- the first commit: no baseline yet, so every finding is new (and the gate fails) -------------------
    created = svc.submit(**_body(site, site.first))
    assert created.status_code == 202, created.text
    one = svc.wait_done(created.json()["test_id"], timeout=600)
    assert one["status"] == "SUCCEEDED", (one["errors"], one["warnings"])
    assert one["baseline"] == "auto" and one["summary"]["baseline"] is None
    assert one["summary"]["diff"]["new"] == one["summary"]["by_severity"]
    assert one["policy"]["passed"] is False and one["policy"]["new_findings"]["baseline_test_id"] is None
    logical = one["summary"]["total"]
    assert logical < sum(sum(c.values()) for c in one["summary"]["by_tool"].values())  # tools overlap

    # -- the second commit against it: exactly one new high, one fixed, the rest unchanged ---------------
    code, out, two = _follow(site, _body(site, site.second), "second")
    assert code == 1, out
    assert two["status"] == "SUCCEEDED", (two["errors"], two["warnings"])
    summary = two["summary"]
    assert summary["baseline"] == {"test_id": one["test_id"], "commit": site.first, "branch": "main"}
    zero = {"critical": 0, "high": 0, "medium": 0, "low": 0, "info": 0}
    assert summary["diff"]["new"] == {**zero, "high": 1}
    assert summary["diff"]["fixed"] == {**zero, "high": 1}
    assert summary["diff"]["updated"] == zero
    assert sum(summary["diff"]["unchanged"].values()) == summary["total"] - 1 == logical - 1
    assert f"1 new (1 high), 1 fixed, {logical - 1} unchanged vs {one['test_id']} (main @ {site.first[:7]})" in out
    [violation] = two["policy"]["violations"]
    assert violation["rule"] == "new_findings" and violation["severity"] == "high" and violation["count"] == 1
    [offending] = violation["findings"]
    assert (offending["path"], offending["severity"], offending["tools"]) == ("app.py", "high",
                                                                            ["bandit", "ruff", "semgrep"])
    new_fp = offending["fingerprint"]

    bundle2 = svc.artifact_root / two["test_id"]
    results = _sarif_results(bundle2)
    states = [r["baselineState"] for r in results]
    assert states.count("new") == 3 and states.count("absent") == 1
    assert {r["tool"] for r in results if r["baselineState"] == "new"} == {"bandit", "ruff", "semgrep"}
    assert all(r["fingerprints"][LOGICAL_KEY] == new_fp for r in results if r["baselineState"] == "new")
    events = svc.http.get(svc.url(f"/v1/security-scans/{two['test_id']}/events"), timeout=30).json()["events"]
    complete = next(e for e in events if e["type"] == "scan_complete")
    assert complete["summary"]["diff"] == summary["diff"] and complete["summary"]["baseline"] == summary["baseline"]

    # The signed attestation covers the baseline and its bundle's digest, and the diff; the bundle verifies.
    predicate = _statement(bundle2)["predicate"]["findings"]
    assert predicate["baseline"]["test_id"] == one["test_id"]
    assert predicate["baseline"]["bundle_digest"] == {
        "path": ATTESTATION_PATH, "sha256": sha256_file(svc.artifact_root / one["test_id"] / ATTESTATION_PATH)}
    assert predicate["diff"]["new"] == summary["diff"]["new"] and predicate["suppressions"]["applied"] == []
    verified = subprocess.run([sys.executable, "-m", "workers.verify", str(bundle2), "--key",
                               str(site.tmp / "keys" / "cosign.pub")], capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0, verified.stderr

    # -- triaged accepted_risk with an expiry: the same change passes the gate --------------------------
    store = FindingsStore(make_engine(site.database_url))
    try:
        page = store.list_findings(WORKSPACE, COMPONENT, limit=500)
        finding = next(f for f in page.items if f.fingerprint == new_fp)
        assert {s.tool for s in finding.sources} == {"bandit", "ruff", "semgrep"}
        store.triage(finding.id, FindingState.ACCEPTED_RISK, actor="test", reason="commands come from config",
                     owner="team-shop", expires_at=datetime.now(UTC) + timedelta(days=7))
    finally:
        store.close()
    # compared with the first commit again (the second scan, now the latest, has the finding already)
    code, out, three = _follow(site, _body(site, site.second, baseline=one["test_id"]), "third")
    assert code == 0, out
    assert three["summary"]["diff"]["new"] == {**zero, "high": 1}  # still new, but waived
    assert three["policy"]["passed"] is True and three["policy"]["new_findings"]["counts"]["high"] == 0
    [waived] = three["policy"]["suppressed"]
    assert (waived["fingerprint"], waived["state"], waived["owner"]) == (new_fp, "accepted_risk", "team-shop")
    bundle3 = svc.artifact_root / three["test_id"]
    suppressed = [r for r in _sarif_results(bundle3) if r["fingerprints"][LOGICAL_KEY] == new_fp]
    assert len(suppressed) == 3 and all(r["suppressions"][0]["status"] == "accepted" for r in suppressed)
    applied = _statement(bundle3)["predicate"]["findings"]["suppressions"]
    assert [a["fingerprint"] for a in applied["applied"]] == [new_fp] and len(applied["sha256"]) == 64

    # -- the workers' clock past the expiry: the finding counts again ----------------------------------
    move(site.clock_file, timedelta(days=8))
    code, out, four = _follow(site, _body(site, site.second, baseline=one["test_id"]), "fourth")
    assert code == 1, out
    assert four["policy"]["passed"] is False
    assert four["policy"]["violations"][0]["findings"][0]["fingerprint"] == new_fp
    assert [e["fingerprint"] for e in four["policy"]["expired_suppressions"]] == [new_fp]
    move(site.clock_file, timedelta())


def test_a_baseline_named_at_submit_must_be_a_succeeded_scan_of_the_component(site):
    svc = site.service
    unknown = svc.submit(**_body(site, site.first, baseline="test_000000000000"))
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "baseline_not_found", unknown.text
    assert list(unknown.json()["error"]["fields"]) == ["baseline"]
    done = svc.submit(**_body(site, site.first))
    record = svc.wait_done(done.json()["test_id"], timeout=600)
    other = svc.submit(**{**_body(site, site.first, baseline=record["test_id"]), "component_id": "other"})
    assert other.status_code == 422 and other.json()["error"]["code"] == "baseline_not_found", other.text
    bad = svc.submit(**_body(site, site.first, baseline="latest"))
    assert bad.status_code == 422 and list(bad.json()["error"]["fields"]) == ["baseline"]
    branch = svc.submit(**_body(site, site.first, baseline_branch="-x"))
    assert branch.status_code == 422 and list(branch.json()["error"]["fields"]) == ["baseline_branch"]
