"""Schemathesis against the running service and its own /openapi.json: generated requests (valid and
invalid) to every documented operation must never produce a 5xx, and every answer must match the
document (status code, content type, headers, body schema). Examples are bounded and derandomized."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, checks

from app import create_app
from app.openapi import build_spec
from tasks.db import make_engine, upgrade
from tasks.findings import FindingInput, ScanInfo
from tasks.findings_store import FindingsStore
from tasks.settings import Settings
from tasks.states import ScanStatus, Severity

CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_headers_conformance, checks.response_schema_conformance]
MAX_EXAMPLES = 40
_RECORDED = "test_c0f0c0f0c0f0"


def _document() -> dict:
    # The same generator the service runs; the served document is compared with it below.
    return build_spec(create_app(Settings.from_env()))


def _cases() -> list[tuple[str, str, GenerationMode]]:
    cases = []
    for path, ops in _document()["paths"].items():
        for method, op in ops.items():
            cases.append((path, method, GenerationMode.POSITIVE))
            if op.get("parameters") or op.get("requestBody"):  # something to get wrong on purpose
                cases.append((path, method, GenerationMode.NEGATIVE))
    return cases


def _operations() -> list[tuple[str, str]]:
    return [(path, method) for path, ops in _document()["paths"].items() for method in ops]


@pytest.fixture(scope="module")
def served_schema(service):
    document = service.http.get(service.url("/openapi.json"), timeout=10).json()
    return schemathesis.openapi.from_dict(document)


@pytest.fixture(scope="module", autouse=True)
def recorded_findings(service):
    """A recorded scan in the service's findings store, so that the generated finding ids (small
    integers) name findings that exist and their answers are checked too."""
    url = service.env["CERTUS_ASSURANCE_DATABASE_URL"]
    upgrade(url)  # as the API does on start; the test writes before any request reached it
    store = FindingsStore(make_engine(url))
    try:
        if store.scan(_RECORDED) is None:
            store.record_scan(
                ScanInfo(test_id=_RECORDED, workspace_id="ws-test", component_id="comp", status=ScanStatus.SUCCEEDED,
                         created_at=datetime.now(UTC), branch="main", on_baseline_branch=True),
                [FindingInput(fingerprint=f"conformance-{n}", tool="bandit", rule_id=f"B60{n}", severity=severity,
                              path=f"src/m{n}.py", line=n, message=f"finding {n}")
                 for n, severity in enumerate(Severity, start=1)])
    finally:
        store.close()


@pytest.mark.parametrize(("path", "method", "mode"), _cases(),
                         ids=lambda v: v.value if isinstance(v, GenerationMode) else v)
def test_api_conforms_to_its_document(served_schema, service, path, method, mode):
    operation = served_schema[path][method.upper()]

    @given(operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case):
        case.call_and_validate(base_url=service.base_url, session=service.http, checks=CHECKS)

    run()


def test_document_is_served(service):
    doc = service.http.get(service.url("/openapi.json"), timeout=10).json()
    assert doc["openapi"].startswith("3.0") and doc["info"]["title"] == "Certus Assurance"
    assert sorted((p, m) for p, ops in doc["paths"].items() for m in ops) == sorted(_operations())
    yaml_text = service.http.get(service.url("/openapi.yaml"), timeout=10)
    assert yaml_text.status_code == 200 and "openapi: 3.0" in yaml_text.text
