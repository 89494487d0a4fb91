"""A source kind and a publish destination of the tests' own, registered the way an operator's
plugin is (``PLUGINS``, ``WORKER_PLUGINS``), go through the real API, a real Celery worker and the
CLI like the service's own: the request schema and the OpenAPI document offer the kind, its check
runs at submit, the worker fetches it and scans it, and a permitted upload is published to the
destination too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from tests.support.cli import service_cli
from tests.support.service import Service, base_env
from tests.support.uploads_servers import wait_for

pytestmark = pytest.mark.integration
VULNERABLE = "import subprocess\n\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n"
FINAL = ("uploaded", "denied", "upload_failed")
# tests.support.drop_destination's name; that module is not imported here, where it would register itself.
DROP = "drop"


def _own_db(redis_url: str, db: int) -> str:
    parts = urlsplit(redis_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("plugins")
    service = Service(env=base_env(
        tmp, _own_db(redis_url, 14),
        CERTUS_ASSURANCE_PLUGINS="tests.support.snippet_source",
        CERTUS_ASSURANCE_WORKER_PLUGINS="tests.support.drop_destination",
        CERTUS_ASSURANCE_DATALAKE_ROOT=str(tmp / "datalake"),
        CERTUS_ASSURANCE_OCI_LAYOUT_ROOT=str(tmp / "oci"),
        CERTUS_ASSURANCE_TRUST_KEY_DIR=str(tmp / "trust"),
        CERTUS_ASSURANCE_UPLOAD_RETRY_BACKOFF="1",
    ), workdir=tmp)
    try:
        service.start_worker("p1", concurrency=2)
        service.start_api()
        service.wait_workers(1)
        yield service
    finally:
        service.stop()


def _error(resp: requests.Response) -> dict[str, object]:
    assert resp.status_code == 422, resp.text
    return resp.json()["error"]  # type: ignore[no-any-return]


def test_the_api_offers_the_plugins_kind_and_checks_it(svc: Service) -> None:
    doc = svc.http.get(svc.url("/openapi.json"), timeout=30).json()
    request = doc["components"]["schemas"]["ScanRequest"]
    assert request["properties"]["source_type"]["enum"] == ["git", "directory", "archive", "snippet"]
    assert {"snippet_code", "snippet_path"} <= set(request["properties"])

    missing = _error(svc.submit(source_type="snippet", profile="smoke"))
    assert missing["code"] == "validation_error"
    assert missing["fields"] == {"snippet_code": ["required when source_type is snippet"]}
    mixed = _error(svc.submit(source_type="snippet", snippet_code="x = 1", branch="main", profile="smoke"))
    assert mixed["fields"] == {"branch": ["only for git sources"]}
    bad = _error(svc.submit(source_type="snippet", snippet_code="x = 1", snippet_path="../x.py"))
    assert list(bad["fields"]) == ["snippet_path"]  # type: ignore[call-overload]
    # The kind's own check at submit: a coded refusal, the same envelope as the service's kinds.
    refused = _error(svc.submit(source_type="snippet", snippet_code="x = 1", snippet_path="private/x.py"))
    assert refused["code"] == "path_not_allowed"
    assert refused["fields"] == {"snippet_path": ["a private folder"]}
    # And the contract's kinds answer as before.
    assert _error(svc.submit(git_url="https://h/r", snippet_code="x", snippet_path="a.py"))["fields"] == {
        "snippet_code": ["not allowed when source_type is git"], "snippet_path": ["only for snippet sources"]}


def test_the_worker_fetches_and_scans_the_plugins_kind(svc: Service) -> None:
    resp = svc.submit(source_type="snippet", snippet_code=VULNERABLE, snippet_path="app/run.py", profile="smoke")
    assert resp.status_code == 202, resp.text
    test_id = resp.json()["test_id"]
    record = svc.wait_done(test_id)
    assert record["status"] == "SUCCEEDED", record
    assert record["source_type"] == "snippet"
    assert record["source_fields"] == {"snippet_code": VULNERABLE, "snippet_path": "app/run.py"}
    assert record["git_url"] is None and record["directory_path"] is None
    assert record["summary"]["by_tool"]["bandit"]["high"] >= 1  # B602: subprocess with shell=True
    sarif = json.loads((svc.artifact_root / test_id / "reports" / "sast" / "bandit.sarif.json").read_text())
    located = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in sarif["runs"][0]["results"]}
    assert "app/run.py" in located
    source = json.loads((svc.artifact_root / test_id / "scan.json").read_text())["source"]
    assert source["source_type"] == "snippet" and source["snippet_path"] == "app/run.py"
    assert source["hash"] == record["source_hash"] and source["detail"] == {"files": 1}

    # The CLI submits it with generic flags, and shows its fields.
    cli = service_cli(svc)
    result = cli("scan", "--workspace", "ws-test", "--component", "comp", "--assessment", "a-2",
                 "--source-type", "snippet", "--source-field", f"snippet_code={VULNERABLE}",
                 "--source-field", "snippet_path=main.py", "--profile", "smoke", "--follow", "--quiet")
    assert result.code == 0, result.err
    test_id = result.out.strip().rsplit("\n", 1)[-1].split(":", 1)[0]
    shown = cli("status", test_id)
    assert shown.code == 0 and "  snippet_path main.py\n" in shown.out, shown.out
    assert cli("scan", "--workspace", "ws-test", "--component", "comp", "--assessment", "a-3",
               "--source-field", "not a name").code == 2


def test_a_permitted_upload_is_published_to_the_plugins_destination(svc: Service) -> None:
    resp = svc.submit(source_type="snippet", snippet_code=VULNERABLE, profile="smoke")
    assert resp.status_code == 202, resp.text
    test_id = resp.json()["test_id"]
    assert svc.wait_done(test_id)["status"] == "SUCCEEDED"
    upload = svc.http.post(svc.url(f"/v1/security-scans/{test_id}/upload-request"), json={}, timeout=30)
    assert upload.status_code == 202, upload.text
    record = wait_for(lambda: (r := svc.status(test_id))["upload_status"] in FINAL and r, timeout=240)
    assert isinstance(record, dict) and record["upload_status"] == "uploaded", record
    assert set(record["remote_artifacts"]) == {"s3", "oci", DROP}
    # Every bundle file, byte for byte, in the destination's folder (it checked each permitted digest).
    bundle = svc.artifact_root / test_id
    dropped = Path(f"{svc.artifact_root}.drop") / test_id
    files = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    assert sorted(p.relative_to(dropped).as_posix() for p in dropped.rglob("*") if p.is_file()) == files
    assert all((dropped / name).read_bytes() == (bundle / name).read_bytes() for name in files)
    assert record["remote_artifacts"][DROP] == {"location": f"file://{dropped}/", "files": len(files)}
    events = svc.http.get(svc.url(f"/v1/security-scans/{test_id}/events"), params={"limit": 1000},
                          timeout=30).json()["events"]
    assert any(e["type"] == "upload" and e.get("destination") == DROP for e in events)
    assert record["upload_permission_id"].startswith("perm_")
