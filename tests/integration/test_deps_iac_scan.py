"""A scan through the real service (API, Celery worker, Redis) with a manifest profile selecting
the dependency, SBOM and IaC/config scanners, against the local OSV snapshot."""

from __future__ import annotations

import json

import pytest

from tests.conftest import _fixture_files
from tests.support.gitrepos import GitDaemon, make_repo
from tests.support.ws import read_stream

TOOLS = ["osv", {"id": "sbom", "config": {"name": "vulnerable-deps"}}, "checkov", "hadolint", "shellcheck",
         "zizmor", "no-such-scanner"]
MANIFEST = {"product": "demo", "version": "1.0", "owners": ["sec@example.com"],
            "profiles": [{"name": "deps-iac", "tools": TOOLS, "thresholds": {"critical": 0}}]}


@pytest.fixture(scope="module")
def deps_repo(git_server: GitDaemon) -> str:
    make_repo(git_server.base, "vulnerable-deps", _fixture_files("vulnerable-deps"))
    return git_server.url("vulnerable-deps")


@pytest.mark.integration
def test_manifest_profile_runs_dependency_sbom_and_iac_scanners(service, deps_repo):
    svc = service  # its settings point CERTUS_ASSURANCE_OSV_DB_PATH at tests/fixtures/osv
    resp = svc.submit(git_url=deps_repo, profile="deps-iac", manifest=MANIFEST)
    assert resp.status_code == 202, resp.text
    test_id = resp.json()["test_id"]
    record = svc.wait_done(test_id, timeout=300)
    assert record["status"] == "SUCCEEDED", (record["errors"], record["warnings"])
    summary = record["summary"]
    assert set(summary["executed_tools"]) == {"osv", "sbom", "checkov", "hadolint", "shellcheck", "zizmor"}
    assert summary["tool_errors"] == {} and summary["skipped_tools"] == {}
    assert {"code": "tool_unsupported", "message": "tool 'no-such-scanner' is not supported"} in record["warnings"]

    by_tool = summary["by_tool"]
    assert by_tool["osv"] == {"critical": 0, "high": 14, "medium": 1, "low": 0, "info": 0}
    assert sum(by_tool["sbom"].values()) == 0
    assert by_tool["hadolint"]["medium"] >= 3 and by_tool["shellcheck"]["medium"] >= 2
    assert by_tool["zizmor"]["high"] >= 3 and by_tool["checkov"]["medium"] >= 6
    assert summary["total"] == sum(sum(counts.values()) for counts in by_tool.values())
    osv_details = summary["tool_details"]["osv"]
    assert osv_details["database"]["age_days"] > 700
    assert osv_details["database"]["ecosystems"]["PyPI"]["newest_advisory_modified"] == "2024-10-10T17:22:00Z"
    assert summary["tool_details"]["sbom"]["components"] >= 9

    bundle = svc.artifact_root / test_id
    for rel in ("reports/sca/osv.sarif.json", "reports/sbom/sbom.cyclonedx.json", "reports/sbom/sbom.spdx.json",
                "reports/sast/checkov.sarif.json", "reports/sast/hadolint.sarif.json",
                "reports/sast/shellcheck.sarif.json", "reports/sast/zizmor.sarif.json", "summary.json"):
        assert (bundle / rel).is_file(), rel
    assert not (bundle / "reports/sast/osv.sarif.json").exists()
    assert not (bundle / "reports/sast/sbom.sarif.json").exists()
    assert json.loads((bundle / "summary.json").read_text())["by_tool"] == by_tool
    osv = json.loads((bundle / "reports/sca/osv.sarif.json").read_text())
    results = osv["runs"][0]["results"]
    assert len(results) == 15
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results}
    assert uris == {"requirements.txt", "poetry.lock", "Pipfile.lock", "uv.lock"}
    assert osv["runs"][0]["properties"]["osvDatabase"]["ecosystems"]["PyPI"]["age_days"] > 700
    cdx = json.loads((bundle / "reports/sbom/sbom.cyclonedx.json").read_text())
    assert "pkg:pypi/requests@2.19.1" in {c.get("purl") for c in cdx["components"]}
    zizmor = json.loads((bundle / "reports/sast/zizmor.sarif.json").read_text())
    assert {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            for r in zizmor["runs"][0]["results"]} == {".github/workflows/ci.yml"}
    assert set(record["artifacts"].values()) >= {"reports/sca/osv.sarif.json", "reports/sbom/sbom.spdx.json"}

    stream = read_stream(headers=svc.ws_headers, url=svc.ws_url(f"/v1/security-scans/{test_id}/stream"))
    completes = {e["tool"]: e for e in stream.events if e["type"] == "tool_complete"}
    assert completes["osv"]["findings"] == 15 and completes["osv"]["exit_code"] == 0
    osv_logs = [e["line"] for e in stream.events if e["type"] == "log" and e["tool"] == "osv"]
    assert any("2661 advisories" in line and "age" in line for line in osv_logs)

    # the same code scanned again gives the same fingerprints
    again = svc.submit(git_url=deps_repo, profile="deps-iac", manifest=MANIFEST).json()["test_id"]
    assert svc.wait_done(again, timeout=300)["status"] == "SUCCEEDED"
    for rel in ("reports/sca/osv.sarif.json", "reports/sast/hadolint.sarif.json",
                "reports/sast/checkov.sarif.json", "reports/sast/zizmor.sarif.json"):
        def prints(test: str, rel: str = rel) -> list[str]:
            doc = json.loads((svc.artifact_root / test / rel).read_text())
            return sorted(next(iter(r["partialFingerprints"].values())) for r in doc["runs"][0]["results"])
        assert prints(test_id) == prints(again), rel
