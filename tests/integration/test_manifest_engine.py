"""The engine with manifests: the runtime ceiling, unsupported tools, signed manifests written into the
bundle, and failures that end the scan with a stable code. Runs the engine in-process on a real
Redis and a real git daemon, with a scanner of our own (a sleeping process) where timing matters."""

from __future__ import annotations

import base64
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tasks import manifest as manifests
from tasks.ids import new_test_id
from tasks.records import ScanRecord
from tasks.settings import Settings
from tasks.store import ScanStore
from workers import engine as engine_mod
from workers.engine import ScanEngine
from workers.scanners.base import Scanner, ToolContext, ToolOutput
from workers.signing import signing_keys
from workers.signing.attestation import verify_bundle
from workers.toolrun import ProcessResult

pytestmark = pytest.mark.integration


@dataclass
class Sleeper(Scanner):
    """A scanner that never finishes on its own."""

    id: str = "sleeper"

    def unavailable_reason(self) -> str | None:
        return None

    def version(self) -> str:
        return "1.0"

    def command(self, ctx: ToolContext) -> list[str]:
        return [sys.executable, "-c", "import time; time.sleep(300)"]

    def parse(self, ctx: ToolContext, result: ProcessResult) -> ToolOutput:
        return ToolOutput(findings=[])


@dataclass
class Quick(Sleeper):
    id: str = "quick"

    def command(self, ctx: ToolContext) -> list[str]:
        return [sys.executable, "-c", "print('done')"]


@pytest.fixture()
def manifest_key(tmp_path: Path) -> tuple[ec.EllipticCurvePrivateKey, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    pub = tmp_path / "manifest.pub"
    pub.write_bytes(signing_keys.public_pem(key))
    return key, pub


def _engine(tmp_path: Path, redis_client, **kw) -> ScanEngine:
    settings = Settings(redis_url="redis://unused", artifact_root=str(tmp_path / "artifacts"),
                        work_root=str(tmp_path / "work"), git_allowed_hosts=("127.0.0.1",),
                        signing_key_dir=str(tmp_path / "keys"), lease_seconds=6, **kw)
    return ScanEngine(settings, redis_client, scanners={"sleeper": Sleeper(), "quick": Quick()})


def _run(engine: ScanEngine, git_url: str, **fields) -> tuple[dict, Path]:
    test_id = new_test_id()
    store = ScanStore(engine.redis, retention_seconds=600)
    store.create(ScanRecord(test_id=test_id, workspace_id="ws-m", component_id="c", assessment_id="a",
                            source_type="git", git_url=git_url, branch=None, commit=None, **fields))
    engine.run_scan(test_id)
    record = store.get(test_id)
    assert record is not None
    return record.to_dict(), Path(engine.settings.artifact_root) / test_id


def test_runtime_ceiling_stops_a_running_scan(tmp_path, redis_client, vulnerable_repo, monkeypatch):
    monkeypatch.setattr(engine_mod, "CEILING_UNIT_SECONDS", 3.0)  # "1 minute" lasts 3 s here
    engine = _engine(tmp_path, redis_client)
    manifest = {"profiles": [{"name": "slow", "tools": ["sleeper"]}], "bundle": {"runtimeCeilingMinutes": 1}}
    t0 = time.monotonic()
    record, bundle = _run(engine, vulnerable_repo["url"], profile="slow", manifest=manifest)
    elapsed = time.monotonic() - t0
    assert record["status"] == "FAILED"
    assert [e["code"] for e in record["errors"]] == ["scan_timeout"]
    assert elapsed < 120, "the sleeping tool must have been killed at the ceiling, not waited for"
    info = json.loads((bundle / "manifest-info.json").read_text())
    assert info["runtime_ceiling_minutes"] == 1
    # A failed scan's bundle is attested all the same.
    assert verify_bundle(bundle, (tmp_path / "keys" / "cosign.pub").read_bytes()).ok


def test_without_a_ceiling_the_same_scan_finishes(tmp_path, redis_client, vulnerable_repo):
    engine = _engine(tmp_path, redis_client)
    manifest = {"profiles": [{"name": "fast", "tools": ["quick", "acme-scan"]}]}
    record, bundle = _run(engine, vulnerable_repo["url"], profile="FAST", manifest=manifest)
    assert record["status"] == "SUCCEEDED", record["errors"]
    info = json.loads((bundle / "manifest-info.json").read_text())
    assert info["profile_resolved"] == "manifest:fast"
    assert info["tools_selected"] == ["quick", "acme-scan"]
    assert info["unsupported_manifest_tools"] == ["acme-scan"]
    assert {"code": "tool_unsupported", "message": "tool 'acme-scan' is not supported"} in record["warnings"]
    assert (bundle / "manifest.json").read_bytes() == manifests.inline_text(manifest).encode()
    assert not (bundle / "manifest.sig").exists()


def test_signed_manifest_in_tree_is_written_with_its_signature(tmp_path, redis_client, git_server, manifest_key):
    from tests.support.gitrepos import make_repo

    key, pub = manifest_key
    text = json.dumps({"product": "p", "profiles": [{"name": "team", "tools": ["quick"]}]}, indent=1).encode()
    sig = base64.b64encode(signing_keys.sign_bytes(key, text)).decode() + "\n"
    make_repo(git_server.base, "with-manifest", {"ci/manifest.json": text.decode(), "ci/manifest.sig": sig,
                                                 "app.py": "print(1)\n"})
    engine = _engine(tmp_path, redis_client, manifest_verification_key_ref=str(pub),
                     manifest_verification_required=True)
    record, bundle = _run(engine, git_server.url("with-manifest"), profile="team", manifest_path="ci/manifest.json")
    assert record["status"] == "SUCCEEDED", record["errors"]
    assert (bundle / "manifest.json").read_bytes() == text
    assert (bundle / "manifest.sig").read_text() == sig
    info = json.loads((bundle / "manifest-info.json").read_text())
    assert info["signature"] == {"present": True, "verified": True, "location": "ci/manifest.sig",
                                 "key_sha256": signing_keys.key_id(key)}
    assert record["manifest_digest"] == manifests.digest(text) == info["manifest_digest"]


@pytest.mark.parametrize("case,code", [
    ("unsigned_inline", "manifest_signature_missing"),
    ("bad_inline", "manifest_signature_invalid"),
    ("traversal", "manifest_path_invalid"),
    ("invalid", "manifest_invalid"),
])
def test_manifest_failures_end_the_scan_with_a_code(case, code, tmp_path, redis_client, vulnerable_repo, manifest_key):
    key, pub = manifest_key
    engine = _engine(tmp_path, redis_client, manifest_verification_key_ref=str(pub),
                     manifest_verification_required=case != "invalid")
    manifest = {"profiles": [{"name": "team", "tools": ["quick"]}]}
    fields: dict = {"profile": "team"}
    if case == "unsigned_inline":
        fields["manifest"] = manifest
    elif case == "bad_inline":
        other = base64.b64encode(signing_keys.sign_bytes(key, b"something else")).decode()
        fields.update(manifest=manifest, manifest_signature=other)
    elif case == "traversal":
        fields["manifest_path"] = "../../../etc/passwd"
    else:
        # A fetched manifest that breaks the schema (tools must be a list).
        root = tmp_path / "manifests"
        root.mkdir()
        (root / "m.json").write_text('{"profiles": [{"name": "team", "tools": "quick"}]}')
        engine = _engine(tmp_path, redis_client, manifest_file_roots=(str(root),))
        fields["manifest_uri"] = f"file://{root / 'm.json'}"
    record, bundle = _run(engine, vulnerable_repo["url"], **fields)
    assert record["status"] == "FAILED"
    assert record["errors"][0]["code"] == code, record["errors"]
    assert not (bundle / "summary.json").exists(), "no scanner may run on a refused manifest"


def test_unusable_signing_key_fails_the_scan_closed(tmp_path, redis_client, vulnerable_repo, monkeypatch):
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "cosign.key").write_bytes(signing_keys.encrypt_private_key(key, "the-right-one"))
    monkeypatch.setenv("COSIGN_PASSWORD", "a-wrong-one")
    engine = _engine(tmp_path, redis_client, cosign_key_ref=str(tmp_path / "cosign.key"))
    record, bundle = _run(engine, vulnerable_repo["url"], profile="fast",
                          manifest={"profiles": [{"name": "fast", "tools": ["quick"]}]})
    assert record["status"] == "FAILED"
    assert [e["code"] for e in record["errors"]] == ["signing_failed"]
    assert "COSIGN_PASSWORD" in record["errors"][0]["message"]
    assert "a-wrong-one" not in json.dumps(record)
    assert not (bundle / "reports/signing/attestation.intoto.json").exists()
    monkeypatch.setenv("COSIGN_PASSWORD", "the-right-one")
    fixed = _engine(tmp_path, redis_client, cosign_key_ref=str(tmp_path / "cosign.key"))
    record, bundle = _run(fixed, vulnerable_repo["url"], profile="fast",
                          manifest={"profiles": [{"name": "fast", "tools": ["quick"]}]})
    assert record["status"] == "SUCCEEDED"
    assert verify_bundle(bundle, signing_keys.public_pem(key)).ok
