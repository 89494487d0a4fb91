"""SAST and secrets scanners through the real service: a manifest profile selects them, the bundle
holds one SARIF file per tool, summary.json counts them, and no secret value leaks anywhere."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.support.gitrepos import GitDaemon, commit_files, make_repo
from tests.support.ws import read_stream

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "vulnerable-python"
SECRETS = ("hunter2-correct-horse", "sk_live_9f8e7d6c5b4a3f2e1d0c9b8a", "AKIAQ3EGRT7NWXJZ5KPL",
           "ghp_R8nQ2vX7kLm4Tz9WbY3cD6fH1jP5sA0eU2gK")
TOOLS = ["bandit", "ruff", "semgrep", "detect-secrets", "detect-secrets-history"]


@pytest.fixture(scope="module")
def sast_repo(git_server: GitDaemon) -> dict[str, str]:
    """The vulnerable fixture, with a token that was committed and later removed."""
    files = {p.relative_to(FIXTURE).as_posix(): p.read_text() for p in FIXTURE.rglob("*") if p.is_file()}
    repo = make_repo(git_server.base, "sast-history", {"deploy.py": f'GITHUB_TOKEN = "{SECRETS[3]}"\n'})
    (repo / "deploy.py").unlink()
    head = commit_files(repo, files, "fixture without the token")
    return {"url": git_server.url("sast-history"), "head": head}


def test_manifest_profile_runs_sast_and_secrets_tools(service, sast_repo):
    manifest = {"product": "demo", "version": "1.0",
                "profiles": [{"name": "sast", "tools": [*TOOLS, "no-such-tool"]}]}
    resp = service.submit(git_url=sast_repo["url"], profile="sast", manifest=manifest)
    assert resp.status_code == 202, resp.text
    test_id = resp.json()["test_id"]
    record = service.wait_done(test_id, timeout=900)
    assert record["status"] == "SUCCEEDED", record["errors"]
    assert record["resolved_commit"] == sast_repo["head"]
    assert any(w["code"] == "tool_unsupported" and "no-such-tool" in w["message"] for w in record["warnings"])

    bundle = service.artifact_root / test_id
    summary = json.loads((bundle / "summary.json").read_text())
    assert sorted(summary["executed_tools"]) == sorted(TOOLS) and not summary["skipped_tools"]
    results = {}
    for tool in TOOLS:
        doc = json.loads((bundle / f"reports/sast/{tool}.sarif.json").read_text())
        assert doc["version"] == "2.1.0" and doc["runs"][0]["tool"]["driver"]["name"] == tool
        # the results this scan found (not those of its baseline it no longer has)
        run_results = [r for r in doc["runs"][0]["results"] if r.get("baselineState") != "absent"]
        results[tool] = run_results
        counts = Counter(r["properties"]["severity"] for r in run_results)
        assert summary["by_tool"][tool] == {s: counts.get(s, 0) for s in ("critical", "high", "medium", "low",
                                                                            "info")}, tool
        for r in run_results:
            uri = r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            assert not uri.startswith("/") and ".." not in uri.split("/")
            assert r["partialFingerprints"]["certusFindingHash/v1"]
    # The total counts logical findings: the reports of several tools on one weakness at one place are one.
    logical = {r["fingerprints"]["certusLogicalFinding/v1"] for found in results.values() for r in found}
    assert summary["total"] == len(logical) < sum(len(r) for r in results.values())
    assert record["summary"]["by_tool"] == summary["by_tool"]

    def rules(tool: str) -> set[tuple[str, str, int]]:
        return {(r["ruleId"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
                 r["locations"][0]["physicalLocation"]["region"]["startLine"]) for r in results[tool]}

    assert {("S608", "db.py", 13), ("S602", "app.py", 9)} <= rules("ruff")
    assert {("sql-built-from-strings", "db.py", 13), ("hardcoded-cloud-key", "settings.py", 5)} <= rules("semgrep")
    assert ("aws-access-key", "settings.py", 5) in rules("detect-secrets")
    # found only because the engine cloned the whole history for this profile
    assert ("github-token", "deploy.py", 1) in rules("detect-secrets-history")

    stream = read_stream(headers=service.ws_headers, url=service.ws_url(f"/v1/security-scans/{test_id}/stream"))
    assert {e["tool"] for e in stream.events if e["type"] == "tool_complete"} == set(TOOLS)
    everything = [p.read_text(errors="replace") for p in bundle.rglob("*") if p.is_file()]
    everything.append(json.dumps(stream.events))
    everything.append(json.dumps(record))
    for secret in SECRETS:
        assert not any(secret in text for text in everything), secret


def test_light_profile_runs_sast_and_secrets_without_semgrep_or_history(service, sast_repo):
    resp = service.submit(git_url=sast_repo["url"], profile="light")
    record = service.wait_done(resp.json()["test_id"], timeout=600)
    assert record["status"] == "SUCCEEDED", record["errors"]
    by_tool = record["summary"]["by_tool"]
    assert {"bandit", "ruff", "detect-secrets"} <= set(by_tool)
    assert "semgrep" not in by_tool and "detect-secrets-history" not in by_tool
    assert by_tool["detect-secrets"]["critical"] >= 1
