"""Every SARIF file the service writes is valid SARIF 2.1.0, checked against the official schema.

``tests/fixtures/sarif-schema-2.1.0.json`` is OASIS's published schema (SARIF 2.1.0 errata01,
``sarif-2.1/schema/sarif-schema-2.1.0.json`` of github.com/oasis-tcs/sarif-spec), kept here
unchanged so the check runs offline. The real scanners run on the vulnerable fixtures and their
findings go through ``workers.sarif`` exactly as the pipeline writes them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.support.gitrepos import commit_files, make_repo
from tests.support.scanrun import FIXTURES, copy_fixture, run_scanner
from workers import sarif
from workers.scanners.base import Finding, Scanner
from workers.scanners.osv import REPORT_PATH, Osv
from workers.scanners.registry import all_scanners

SCHEMA = json.loads((FIXTURES / "sarif-schema-2.1.0.json").read_text())
VALIDATOR = jsonschema.Draft4Validator(SCHEMA, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
# osv needs its database snapshot: it runs on the vulnerable-deps fixture below.
SCANNERS = sorted(set(all_scanners()) - {"osv"})


def _invalid(doc: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(doc)]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The vulnerable-python fixture as a repository whose history also held a since-removed token."""
    files = {p.name: p.read_text() for p in (FIXTURES / "vulnerable-python").iterdir() if p.is_file()}
    repo = make_repo(tmp_path_factory.mktemp("repos"), "vulnerable-python", files)
    commit_files(repo, {"deploy.py": 'GITHUB_TOKEN = "ghp_R8nQ2vX7kLm4Tz9WbY3cD6fH1jP5sA0eU2gK"\n'}, "add deploy")
    (repo / "deploy.py").unlink()
    commit_files(repo, {}, "remove deploy")
    return repo


def test_the_schema_is_the_official_one() -> None:
    jsonschema.Draft4Validator.check_schema(SCHEMA)
    assert SCHEMA["id"] == "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
    assert _invalid({"version": "2.1.0", "runs": [{"tool": {"driver": {}}}]})  # a driver needs a name


@pytest.mark.parametrize("scanner_id", SCANNERS)
def test_every_sarif_a_scanner_leads_to_is_valid(scanner_id: str, source: Path, tmp_path: Path) -> None:
    scanner: Scanner = all_scanners()[scanner_id]
    reason = scanner.unavailable_reason()
    if reason:
        pytest.fail(f"{scanner_id} must be installed for this test (make tools): {reason}")
    output, _ = run_scanner(scanner, source, tmp_path / "scratch")
    documents = {name: json.loads(data) for name, data in output.files.items() if name.endswith(".sarif.json")}
    if output.sarif:  # the pipeline writes reports/sast/<id>.sarif.json from the findings
        documents[f"reports/sast/{scanner_id}.sarif.json"] = sarif.build(scanner.id, scanner.version(),
                                                                         output.findings)
    for name, doc in documents.items():
        assert _invalid(doc) == [], name
    assert bool(documents) == (scanner_id != "sbom")  # the SBOM scanner writes SPDX and CycloneDX only


def test_the_fixture_gives_the_schema_real_findings_to_check(source: Path, tmp_path: Path) -> None:
    # Most of the documents above carry results: an empty run alone would prove little.
    scanners = all_scanners()
    with_results = []
    for scanner_id in ("bandit", "ruff", "detect-secrets", "detect-secrets-history"):
        output, _ = run_scanner(scanners[scanner_id], source, tmp_path / "scratch")
        doc = sarif.build(scanner_id, scanners[scanner_id].version(), output.findings)
        assert _invalid(doc) == []
        with_results.append(bool(doc["runs"][0]["results"]))
    assert all(with_results)


def test_osvs_own_report_is_valid(tmp_path: Path) -> None:
    source = copy_fixture("vulnerable-deps", tmp_path / "src")
    output, _ = run_scanner(Osv(str(FIXTURES / "osv")), source, tmp_path / "scratch")
    doc = json.loads(output.files[REPORT_PATH])
    assert doc["runs"][0]["results"], "the snapshot knows vulnerabilities in the fixture's locks"
    assert _invalid(doc) == []


def test_every_optional_field_sarif_build_writes_is_valid() -> None:
    findings = [
        Finding(tool="t", rule_id="R1", severity=severity, message="m", path="src/a.py", line=3, end_line=5,
                column=7, snippet="x = 1", rule_name="Rule one", help_uri="https://example.test/r1",
                properties={"cwe": "CWE-78", "confidence": "high"})
        for severity in ("critical", "high", "medium", "low", "info")
    ] + [Finding(tool="t", rule_id="R2", severity="low", message="no location")]
    doc = sarif.build("t", "1.0", findings, information_uri="https://example.test")
    assert _invalid(doc) == []
    broken = json.loads(json.dumps(doc))
    broken["runs"][0]["results"][0]["level"] = "critical"  # not a SARIF level
    assert _invalid(broken)
