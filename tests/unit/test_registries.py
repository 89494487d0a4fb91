"""Source kinds, publish destinations and scanners are extension points: each is a protocol and a
registry, and everything that depends on them asks the registry. A kind and a destination of the
tests' own, registered here, go through the request schema, the service's check, the scan record,
the worker's fetch and the upload engine like the service's own."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from marshmallow import ValidationError

from app.schemas.scans import ScanRequestSchema
from tasks import sources
from tasks.errors import ErrorCode
from tasks.events import EventLog
from tasks.ids import new_test_id
from tasks.records import ScanRecord
from tasks.settings import Settings
from tasks.sources import CheckContext, FieldInvalid, SourceField, SourceKind, SourceRefused
from tasks.states import ScanStatus, UploadStatus
from tasks.store import ScanStore
from tasks.uploads import UploadStore
from workers.redact import Redactor
from workers.scanners.base import Scanner
from workers.scanners.registry import all_scanners
from workers.sources.base import FetchContext, FetchedSource
from workers.sources.directory import tree_hash
from workers.sources.errors import SourceError
from workers.sources.fetch import fetch_source
from workers.uploads import destinations
from workers.uploads.base import Destination, PublishJob
from workers.uploads.engine import UploadEngine
from workers.uploads.signing import ATTESTATION_PATH, PemSigner
from workers.uploads.trust_policy import Decision

ROOT = Path(__file__).resolve().parents[2]
BASE = {"workspace_id": "ws", "component_id": "c", "assessment_id": "a"}


# -- a source kind of the tests' own ------------------------------------------------------------
def _no_nul(value: str, settings: Settings | None) -> None:
    if "\x00" in value:
        raise FieldInvalid("must not contain NUL characters")


def fetch_paste(ctx: FetchContext) -> FetchedSource:
    """The worker's half of the kind: the pasted code as one file."""
    (ctx.dest / str(ctx.values.get("paste_path") or "paste.py")).parent.mkdir(parents=True, exist_ok=True)
    (ctx.dest / str(ctx.values.get("paste_path") or "paste.py")).write_text(str(ctx.values["paste_code"]))
    return FetchedSource("paste", detail={"files": 1})


class Paste(SourceKind):
    """Code pasted into the request."""

    name = "paste"
    fields: tuple[SourceField, ...] = (
        SourceField("paste_code", required=True, min_length=1, max_length=1000, check=_no_nul),
        SourceField("paste_path", pattern=r"^[A-Za-z][A-Za-z0-9_]{0,30}\.py$", normalise=str.lower),
    )
    fetcher = "tests.unit.test_registries:fetch_paste"
    checked: list[dict[str, Any]] = []

    def check(self, values: Mapping[str, Any], ctx: CheckContext) -> None:
        self.checked.append({**values, "workspace": ctx.workspace_id})
        if values.get("paste_path") == "Secret.py":
            raise SourceRefused(ErrorCode.PATH_NOT_ALLOWED, "not that file", field="paste_path", detail="refused")


@pytest.fixture()
def paste() -> Iterator[Paste]:
    kind = Paste()
    sources.register(kind)
    try:
        yield kind
    finally:
        sources.unregister(kind.name)


def load(schema: ScanRequestSchema, **body: Any) -> dict[str, Any]:
    return schema.load({**BASE, **body})  # type: ignore[no-any-return]


def messages(schema: ScanRequestSchema, **body: Any) -> dict[str, Any]:
    with pytest.raises(ValidationError) as caught:
        load(schema, **body)
    return caught.value.messages  # type: ignore[return-value]


def test_the_contract_kinds_are_registered_in_order_and_make_the_schema() -> None:
    assert sources.names()[:3] == ("git", "directory", "archive")
    assert list(sources.source_fields())[:5] == ["git_url", "branch", "commit", "directory_path", "archive_path"]
    schema = ScanRequestSchema()
    assert list(schema.fields)[:9] == ["workspace_id", "component_id", "assessment_id", "source_type", "git_url",
                                       "branch", "commit", "directory_path", "archive_path"]
    assert schema.fields["source_type"].validate is not None
    assert "Must be one of: git, directory, archive" in messages(schema, source_type="svn")["source_type"][0]


def test_a_kind_registered_later_is_taken_by_a_schema_made_before(paste: Paste) -> None:
    made_before = ScanRequestSchema()  # as the routes' schema is, at import, before plugins load
    sources.unregister(paste.name)
    assert "source_type" in messages(made_before, source_type="paste", paste_code="x")
    sources.register(paste)
    data = load(made_before, source_type="paste", paste_code="print(1)\n", paste_path="Main.py")
    assert data == {**BASE, "source_type": "paste", "paste_code": "print(1)\n", "paste_path": "main.py",
                    "profile": "light"}
    assert messages(made_before, source_type="paste") == {"paste_code": ["required when source_type is paste"]}
    assert messages(made_before, source_type="paste", paste_code="x", paste_path="../x.py")["paste_path"] == [
        "String does not match expected pattern."]
    assert messages(made_before, source_type="paste", paste_code="a\x00b") == {
        "paste_code": ["must not contain NUL characters", "required when source_type is paste"]}
    # Another kind's fields are refused the same way as between the contract's kinds.
    assert messages(made_before, source_type="paste", paste_code="x", git_url="https://h/r", branch="main") == {
        "git_url": ["not allowed when source_type is paste"], "branch": ["only for git sources"]}
    assert messages(made_before, git_url="https://h/r", paste_path="a.py") == {
        "paste_path": ["only for paste sources"]}
    sources.unregister(paste.name)
    assert "source_type" in messages(made_before, source_type="paste", paste_code="x")


def test_registration_refuses_clashes(paste: Paste) -> None:
    with pytest.raises(ValueError, match="already registered"):
        sources.register(Paste())

    class Clash(Paste):
        name = "clash"

    for fields, why in [((SourceField("profile"),), "not allowed"), ((SourceField("source_fields"),), "not allowed"),
                        ((SourceField("Bad-Name"),), "not allowed"), ((SourceField("hash"),), "not allowed"),
                        ((SourceField("branch", required=True),), "another kind's")]:
        Clash.fields = fields
        with pytest.raises(ValueError, match=why):
            sources.register(Clash())
    Clash.fields = (SourceField("clash_url"),)
    Clash.name = "Not A Name"
    with pytest.raises(ValueError, match="must match"):
        sources.register(Clash())
    assert sources.names() == ("git", "directory", "archive", "paste")


def test_the_record_keeps_a_new_kinds_fields_in_source_fields(paste: Paste) -> None:
    assert sources.record_fields({"source_type": "git", "git_url": "https://h/r", "branch": "main"}) == {
        "source_type": "git", "git_url": "https://h/r", "branch": "main"}
    stored = sources.record_fields({**BASE, "source_type": "paste", "paste_code": "x = 1", "profile": "light"})
    assert stored == {"source_type": "paste", "source_fields": {"paste_code": "x = 1"}}
    record = ScanRecord(test_id="test_00000000abcd", workspace_id="ws", component_id="c", assessment_id="a",
                        profile="light", **stored)
    again = ScanRecord.from_fields(record.to_fields())
    assert again.source_fields == {"paste_code": "x = 1"} and again.source_value("paste_code") == "x = 1"
    assert again.source_value("git_url") is None
    # The contract's kinds answer exactly as before: no source_fields in their records.
    git = ScanRecord(test_id="test_00000000abcd", workspace_id="ws", component_id="c", assessment_id="a",
                     profile="light", **sources.record_fields({"source_type": "git", "git_url": "https://h/r"}))
    assert "source_fields" not in git.to_dict() and git.source_value("git_url") == "https://h/r"


def test_the_check_at_submit_is_the_kinds_own(paste: Paste, tmp_path: Path) -> None:
    settings = Settings(allowed_source_roots=(str(tmp_path),))
    ctx = CheckContext(settings, "ws", None)
    sources.check({"source_type": "paste", "paste_code": "x", "paste_path": "ok.py", "profile": "light"}, ctx)
    assert paste.checked[-1] == {"paste_code": "x", "paste_path": "ok.py", "workspace": "ws"}
    with pytest.raises(SourceRefused) as refused:
        sources.check({"source_type": "paste", "paste_code": "x", "paste_path": "Secret.py"}, ctx)
    assert (refused.value.code, refused.value.field, refused.value.detail) == ("path_not_allowed", "paste_path",
                                                                              "refused")
    # The contract's kinds: the same codes, messages and fields as the service always answered.
    with pytest.raises(SourceRefused) as refused:
        sources.check({"source_type": "directory", "directory_path": "/etc"}, ctx)
    assert (refused.value.code, refused.value.message, refused.value.field, refused.value.detail) == (
        "path_not_allowed", "directory_path must lie inside a configured allowed root", "directory_path",
        "outside the allowed roots")
    sources.check({"source_type": "directory", "directory_path": str(tmp_path)}, ctx)
    with pytest.raises(SourceRefused) as refused:
        sources.check({"source_type": "archive", "archive_path": "upload_" + "0" * 32}, ctx)
    assert (refused.value.code, refused.value.field, refused.value.detail) == ("archive_not_found", "archive_path",
                                                                              "unknown upload id")
    with pytest.raises(SourceRefused) as refused:
        sources.check({"source_type": "git", "git_url": "file:///srv/repo"}, ctx)
    assert (refused.value.code, refused.value.field) == ("git_url_not_allowed", "git_url")


def _record(source_type: str, **fields: Any) -> ScanRecord:
    return ScanRecord(test_id="test_00000000abcd", workspace_id="ws", component_id="c", assessment_id="a",
                      profile="light", **sources.record_fields({"source_type": source_type, **fields}))


def test_the_worker_fetches_through_the_kinds_fetcher(paste: Paste, tmp_path: Path) -> None:
    dest = tmp_path / "src"
    fetched = fetch_source(Settings(), _record("paste", paste_code="import os\n", paste_path="main.py"), dest,
                           Redactor())
    assert (dest / "main.py").read_text() == "import os\n"
    assert fetched.source_type == "paste" and fetched.written_by_worker
    assert fetched.hash == tree_hash(dest)  # a fetcher that leaves the hash empty gets the tree's


def test_a_kind_the_worker_cannot_fetch_fails_the_scan_with_a_code(paste: Paste, tmp_path: Path) -> None:
    with pytest.raises(SourceError) as unknown:
        fetch_source(Settings(), _record("svn"), tmp_path / "a", Redactor())
    assert unknown.value.code == "source_type_unsupported"

    class Unfetchable(Paste):
        name = "unfetchable"
        fields = (SourceField("paste_code", required=True, min_length=1, max_length=1000, check=_no_nul),)
        fetcher = "tests.support.no_such_module:fetch"

    sources.register(Unfetchable())
    try:
        with pytest.raises(SourceError) as unfetchable:
            fetch_source(Settings(), _record("unfetchable", paste_code="x"), tmp_path / "b", Redactor())
        assert unfetchable.value.code == "source_type_unsupported"
    finally:
        sources.unregister("unfetchable")



# -- a publish destination of the tests' own ----------------------------------------------------
class Memory(Destination):
    trust_name = "memory_store"
    published: list[PublishJob] = []

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def location(self, test_id: str) -> str:
        return f"memory://{test_id}"

    def publish(self, job: PublishJob) -> dict[str, Any]:
        self.published.append(job)
        return {"files": sorted(job.digests)}


class PermitTrust:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def verify_and_permit(self, request: dict[str, Any]) -> Decision:
        self.requests.append(request)
        return Decision(True, permission_id="perm_test", proof={"statement": {}})


@pytest.fixture()
def memory() -> Iterator[type[Memory]]:
    destinations.register("memory", Memory)
    try:
        yield Memory
    finally:
        destinations.unregister("memory")


def test_the_contract_destinations_keep_their_trust_names() -> None:
    settings = Settings(registry="registry.example:5000", registry_repository="certus/scans")
    built = destinations.build(settings)
    assert list(built) == ["s3", "oci"]
    assert {n: d.trust_name for n, d in built.items()} == {"s3": "raw_s3", "oci": "oci_registry"}
    assert built["s3"].location("test_0123456789ab") == (
        f"s3://{settings.datalake_raw_bucket}/{settings.datalake_raw_prefix}/test_0123456789ab/incoming/")
    assert built["oci"].location("test_0123456789ab") == "registry.example:5000/certus/scans:test_0123456789ab"
    with pytest.raises(ValueError, match="already registered"):
        destinations.register("s3", Memory)
    with pytest.raises(ValueError, match="must match"):
        destinations.register("Not A Name", Memory)


@pytest.fixture()
def permitted_bundle(tmp_path: Path, redis_client: Any) -> tuple[Settings, str, str]:
    settings = Settings(artifact_root=str(tmp_path / "artifacts"))
    test_id = new_test_id()
    store = ScanStore(redis_client)
    store.create(ScanRecord(test_id=test_id, workspace_id="ws", component_id="c", assessment_id="a",
                            profile="smoke", status=ScanStatus.SUCCEEDED))
    bundle = tmp_path / "artifacts" / test_id
    (bundle / ATTESTATION_PATH).parent.mkdir(parents=True)
    (bundle / "scan.json").write_text(json.dumps({"source": {"source_type": "git"}}))
    (bundle / ATTESTATION_PATH).write_text("{}")
    _, _, request_id = UploadStore(store, EventLog(redis_client)).open_request(test_id, "basic", None)
    return settings, test_id, request_id


def test_a_registered_destination_is_asked_permitted_and_published_to(
        memory: type[Memory], permitted_bundle: tuple[Settings, str, str], redis_client: Any) -> None:
    settings, test_id, request_id = permitted_bundle
    trust = PermitTrust()
    engine = UploadEngine(settings, redis_client, trust=trust,
                          signer=PemSigner(ec.generate_private_key(ec.SECP256R1())))
    assert engine.verify_upload(test_id, request_id) == ["s3", "oci", "memory"]  # one publish task each
    assert trust.requests[0]["storage_destinations"] == {
        "raw_s3": f"s3://{settings.datalake_raw_bucket}/{settings.datalake_raw_prefix}/{test_id}/incoming/",
        "oci_registry": f"oci-layout:{settings.oci_layout_root}/{settings.registry_repository}:{test_id}",
        "memory_store": f"memory://{test_id}"}
    engine.publish_upload(test_id, request_id, "memory")
    job = memory.published[-1]
    assert (job.test_id, sorted(job.digests)) == (test_id, [ATTESTATION_PATH, "scan.json"])
    state = engine.uploads.state(test_id)
    # Not every destination is done yet: the upload stays permitted, with what is done so far.
    assert state.upload_status == UploadStatus.PERMITTED
    assert state.remote_artifacts == {"memory": {"files": [ATTESTATION_PATH, "scan.json"]}}
    engine.publish_upload(test_id, request_id, "elsewhere")
    state = engine.uploads.state(test_id)
    assert state.upload_status == UploadStatus.UPLOAD_FAILED
    assert state.upload_reason == "elsewhere: destination_unknown: unknown destination 'elsewhere'"


def test_publishing_ends_uploaded_once_every_destination_is_done(
        memory: type[Memory], permitted_bundle: tuple[Settings, str, str], redis_client: Any) -> None:
    settings, test_id, request_id = permitted_bundle
    engine = UploadEngine(settings, redis_client, trust=PermitTrust(), destinations={"memory": Memory(settings)},
                          signer=PemSigner(ec.generate_private_key(ec.SECP256R1())))
    assert engine.verify_upload(test_id, request_id) == ["memory"]
    engine.publish_upload(test_id, request_id, "memory")
    assert engine.uploads.state(test_id).upload_status == UploadStatus.UPLOADED


# -- scanners ----------------------------------------------------------------------------------
def test_scanner_capabilities_are_declared_and_category_is_gone() -> None:
    for scanner in all_scanners().values():
        assert Scanner in type(scanner).__mro__, scanner.id  # an adapter subclasses the protocol
        for capability in ("needs_history", "report_on_stdout", "runs_outside_source"):
            assert isinstance(getattr(scanner, capability), bool), (scanner.id, capability)
        assert not hasattr(scanner, "category"), scanner.id
    declared = {s.id: (s.needs_history, s.report_on_stdout, s.runs_outside_source) for s in all_scanners().values()}
    assert declared["detect-secrets-history"] == (True, False, False)
    assert declared["checkov"] == (False, True, True)
    assert all(declared[t][1] for t in ("hadolint", "shellcheck", "zizmor"))


# -- nothing else dispatches on a kind's or a destination's name --------------------------------
DISPATCH = re.compile(r"""(source_type|destination)\s*(==|!=)\s*["']|["'](git|directory|archive|s3|oci)["']\s*"""
                      r"""(==|!=)\s*(source_type|destination)|\bkind\s*(==|!=)\s*["'](git|directory|archive)["']|"""
                      r"""getattr\([^)]*["'](needs_history|report_on_stdout|runs_outside_source|category)["']""")


def test_no_string_dispatch_on_a_source_kind_a_destination_or_a_scanner_capability() -> None:
    found = []
    for package in ("app", "tasks", "workers", "cli"):
        for path in (ROOT / package).rglob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if DISPATCH.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []
