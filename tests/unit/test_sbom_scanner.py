"""The sbom scanner (syft, offline) on the vulnerable-deps fixture; the SPDX document validates."""

from __future__ import annotations

import json

from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from tests.support.scanrun import copy_fixture, run_scanner
from workers.scanners.sbom import CYCLONEDX, SPDX, Sbom

EXPECTED = {("pkg:pypi/requests@2.19.1"), "pkg:pypi/urllib3@1.26.17", "pkg:pypi/pyyaml@5.3",
            "pkg:pypi/certifi@2024.8.30", "pkg:pypi/flask@2.2.2", "pkg:pypi/werkzeug@2.2.2",
            "pkg:pypi/jinja2@2.10", "pkg:pypi/markupsafe@2.1.5", "pkg:npm/lodash@4.17.15"}


def test_sbom_lists_the_fixture_dependencies_and_spdx_validates(tmp_path):
    scanner = Sbom()
    assert scanner.unavailable_reason() is None, "run `make tools` first"
    source = copy_fixture("vulnerable-deps", tmp_path / "src")
    output, result = run_scanner(scanner, source, tmp_path / "scratch", config={"name": "vulnerable-deps"})
    assert result.exit_code == 0
    assert output.sarif is False and output.findings == []
    assert set(output.files) == {CYCLONEDX, SPDX}

    cdx = json.loads(output.files[CYCLONEDX])
    assert cdx["bomFormat"] == "CycloneDX"
    purls = {c.get("purl") for c in cdx["components"]}
    assert EXPECTED <= purls

    spdx_path = tmp_path / "sbom.spdx.json"
    spdx_path.write_bytes(output.files[SPDX])
    document = parse_file(str(spdx_path))
    assert validate_full_spdx_document(document) == []
    assert document.creation_info.name == "vulnerable-deps"
    spdx_purls = {ref.locator for pkg in document.packages for ref in pkg.external_references
                  if ref.reference_type == "purl"}
    assert EXPECTED <= spdx_purls
    assert output.details["components"] == len(cdx["components"])


def test_a_bad_source_name_is_not_passed_on(tmp_path):
    source = copy_fixture("vulnerable-deps", tmp_path / "src")
    output, result = run_scanner(Sbom(), source, tmp_path / "scratch", config={"name": "--output=x"})
    assert result.argv[result.argv.index("--source-name") + 1] == "source"
    assert json.loads(output.files[SPDX])["name"] == "source"
