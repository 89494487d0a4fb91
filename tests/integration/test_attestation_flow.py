"""A real scan's bundle is attested last, over every other file, and verifies with our command and cosign."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys

import pytest

from tests.support.cosign import find_cosign, run_cosign
from workers.signing.attestation import ATTESTATION_PATH, PREDICATE_TYPE, bundle_files

pytestmark = pytest.mark.integration


def _verify(bundle, key) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workers.verify", str(bundle), "--key", str(key)],
                          capture_output=True, text=True, timeout=120)


def test_bundle_attestation_verifies_and_detects_tampering(service, vulnerable_repo, tmp_path):
    resp = service.submit(git_url=vulnerable_repo["url"], profile="smoke")
    assert resp.status_code == 202, resp.text
    test_id = resp.json()["test_id"]
    record = service.wait_done(test_id)
    assert record["status"] == "SUCCEEDED", record
    bundle = service.artifact_root / test_id
    pub = service.workdir / "keys" / "cosign.pub"
    assert pub.is_file(), "the worker generates its key pair on first use"

    envelope = json.loads((bundle / ATTESTATION_PATH).read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == PREDICATE_TYPE
    names = {s["name"] for s in statement["subject"]}
    assert names == set(bundle_files(bundle)) and ATTESTATION_PATH not in names
    assert {"scan.json", "manifest.json", "manifest-info.json", "logs/stream.jsonl"} <= names
    predicate = statement["predicate"]
    assert predicate["source"]["resolved_commit"] == vulnerable_repo["first"]
    assert predicate["manifest"]["digest"] == record["manifest_digest"]
    assert predicate["profile"] == {"requested": "smoke", "resolved": "smoke"}
    assert "bandit" in predicate["tools"]
    assert predicate["timings"]["completed_at"] == record["completed_at"]
    # The stream file in the bundle already ends with the scan_complete event it attests to.
    last = json.loads((bundle / "logs/stream.jsonl").read_text().splitlines()[-1])
    assert last["type"] == "scan_complete" and last["status"] == "SUCCEEDED"
    assert "reports.signing.attestation.intoto" in {k for k in record["artifacts"]} or \
        ATTESTATION_PATH in record["artifacts"].values()

    ok = _verify(bundle, pub)
    assert ok.returncode == 0, ok.stderr
    assert "Verified OK" in ok.stdout

    cosign = find_cosign()
    if cosign is not None:
        for rel in ("scan.json", "logs/stream.jsonl", "reports/sast/bandit.sarif.json"):
            res = run_cosign(cosign, "verify-blob-attestation", "--key", str(pub), "--insecure-ignore-tlog=true",
                             "--type", PREDICATE_TYPE, "--signature", ATTESTATION_PATH, rel, cwd=bundle)
            assert res.returncode == 0, res.stderr

    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    sarif = copy / "reports/sast/bandit.sarif.json"
    sarif.write_text(sarif.read_text().replace('"B602"', '"B000"'))
    bad = _verify(copy, pub)
    assert bad.returncode == 1
    assert "bundle_modified" in bad.stderr and "reports/sast/bandit.sarif.json" in bad.stderr
