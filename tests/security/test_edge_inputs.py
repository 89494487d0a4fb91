"""Inputs at the edges of what the file system, the schema and the engine take: names too long for
the file system or running through a file, characters that are not shown as themselves, a runtime
ceiling past any clock, folders nested thousands deep. Each gets a clear 4xx (or a scan failure)
with a stable code, never a 500 or an internal_error, and nothing is written."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile

import pytest

from tasks import manifest as manifests
from tasks.pathsafe import UnsafePath, confine
from tasks.settings import Settings
from tests.support.edge import BODY, auth, edge, make_app  # noqa: F401 - edge is a fixture
from tests.support.records import scan_record
from workers.pipeline.manifest import resolve_manifest
from workers.sources.archive import MAX_DEPTH, Limits, extract
from workers.sources.errors import SourceError


# -- artifact paths the file system refuses -------------------------------------------------------
@pytest.fixture()
def bundle(edge, tmp_path):  # noqa: F811
    build, keys, _ = edge
    c = make_app(build).test_client()
    key, _ = keys.create("submitter", ["ws-a"])
    test_id = c.post("/v1/security-scans", json=BODY, headers=auth(key)).json["test_id"]
    root = tmp_path / "a" / test_id
    (root / "reports").mkdir(parents=True)
    (root / "scan.json").write_text("{}")
    return c, key, test_id


@pytest.mark.parametrize("relative, status, code", [
    ("a" * 256, 400, "artifact_path_invalid"),                           # ENAMETOOLONG: one part
    ("/".join(["abcdefgh"] * 600), 400, "artifact_path_invalid"),        # ENAMETOOLONG: the whole path
    ("/".join(["x" * 200] * 20), 400, "artifact_path_invalid"),          # fits alone, not under the root
    ("reports/" + "r" * 255, 404, "artifact_not_found"),                 # the longest name: just absent
    ("scan.json/x", 404, "artifact_not_found"),                          # ENOTDIR
    ("scan.json/x/y/z", 404, "artifact_not_found"),
])
def test_artifact_paths_the_file_system_refuses_get_a_clean_answer(bundle, relative, status, code):
    c, key, test_id = bundle
    answer = c.get(f"/v1/security-scans/{test_id}/artifacts/{relative}", headers=auth(key))
    assert answer.status_code == status, answer.get_data(as_text=True)[:300]
    assert answer.json["error"]["code"] == code
    assert "Traceback" not in answer.get_data(as_text=True)
    assert c.get(f"/v1/security-scans/{test_id}/artifacts/scan.json", headers=auth(key)).status_code == 200


def test_confine_treats_a_path_through_a_file_as_missing_and_a_too_long_one_as_invalid(tmp_path):
    (tmp_path / "f").write_text("x")
    assert confine(tmp_path, "f/inner") == tmp_path / "f" / "inner"
    assert not (tmp_path / "f" / "inner").exists()
    for relative in ("n" * 256, "/".join(["d" * 250] * 17)):
        with pytest.raises(UnsafePath) as err:
            confine(tmp_path, relative)
        assert err.value.code == "path_invalid"
    # Folders that exist, ending just short of PATH_MAX with the root in front: one more part passes
    # the text check but not the file system (ENAMETOOLONG), and is refused rather than raised.
    parts = ["d" * 250] * ((4080 - len(str(tmp_path))) // 251)
    parts.append("e" * (4080 - len(str(tmp_path.joinpath(*parts))) - 1))
    tmp_path.joinpath(*parts).mkdir(parents=True)
    with pytest.raises(UnsafePath) as err:
        confine(tmp_path, "/".join([*parts, "f" * 40]))
    assert err.value.code == "path_invalid"


# -- characters that are not shown as themselves ---------------------------------------------------
HIDDEN = {"C1 NEL": "\x85", "C1 CSI": "\x9b", "ESC": "\x1b", "TAB": "\t", "RLO": "\u202e",
          "LRI": "\u2066", "PDI": "\u2069", "RLM": "\u200f", "ZWSP": "\u200b", "ZWJ": "\u200d",
          "BOM": "\ufeff", "ALM": "\u061c", "soft hyphen": "\xad", "line separator": "\u2028",
          "paragraph separator": "\u2029"}

SUBMIT_FIELDS = {
    "branch": lambda c: {"branch": f"release{c}/1"},
    "commit": lambda c: {"commit": f"abcdef1{c}"},
    "workspace_id": lambda c: {"workspace_id": f"ws-a{c}"},
    "component_id": lambda c: {"component_id": f"c{c}"},
    "assessment_id": lambda c: {"assessment_id": f"a1{c}"},
    "profile": lambda c: {"profile": f"light{c}"},
    "requested_by": lambda c: {"requested_by": f"alice{c}"},
    "manifest_path": lambda c: {"manifest_path": f"certus{c}.json"},
    "git_url": lambda c: {"git_url": f"https://127.0.0.1/org/re{c}po.git"},
    "manifest_uri": lambda c: {"manifest_uri": f"https://127.0.0.1/m{c}.json"},
    "manifest": lambda c: {"manifest": {"profiles": [{"name": f"light{c}", "tools": ["bandit"]}]}},
}


@pytest.mark.parametrize("char", HIDDEN.values(), ids=HIDDEN.keys())
def test_no_identifier_or_name_takes_a_hidden_character(edge, char):  # noqa: F811
    build, keys, client = edge
    c = make_app(build).test_client()
    admin, _ = keys.create("admin", ["*"])
    keys_before = client.hlen("ca:keys")
    for field, change in SUBMIT_FIELDS.items():
        body = {k: v for k, v in {**BODY, **change(char)}.items() if v is not None}
        answer = c.post("/v1/security-scans", json=body, headers=auth(admin))
        assert answer.status_code == 422, (field, answer.json)
        assert answer.json["error"]["code"] == "validation_error"
        assert field in answer.json["error"]["fields"], (field, answer.json)
    for body, field in (({"role": "reader", "workspaces": ["ws-a"], "name": f"ci{char}"}, "name"),
                        ({"role": "reader", "workspaces": [f"ws-a{char}"]}, "workspaces")):
        answer = c.post("/v1/keys", json=body, headers=auth(admin))
        assert answer.status_code == 422 and field in answer.json["error"]["fields"], (field, answer.json)
    listed = c.get("/v1/security-scans", query_string={"component_id": f"c{char}"}, headers=auth(admin))
    assert listed.status_code == 422
    assert client.zcard("ca:idx:all") == 0 and client.hlen("ca:keys") == keys_before


@pytest.mark.parametrize("char", ["\x85", "\u202e", "\u200b"])
def test_an_uploaded_archive_named_with_a_hidden_character_is_refused(edge, tmp_path, char):  # noqa: F811
    build, keys, _ = edge
    uploads = tmp_path / "uploads"
    c = make_app(build, archives_root=str(uploads)).test_client()
    key, _ = keys.create("submitter", ["ws-a"])
    answer = c.post("/v1/security-scans/upload-archive", headers=auth(key), content_type="multipart/form-data",
                    data={"file": (io.BytesIO(_tar_bytes({"a.py": b"1"})), f"invoice{char}rat.tar")})
    assert answer.status_code == 422 and "file" in answer.json["error"]["fields"], answer.json
    assert not uploads.exists() or list(uploads.iterdir()) == []


def test_manifest_names_with_hidden_characters_are_invalid():
    for manifest in ({"profiles": [{"name": "team\u202e", "tools": ["bandit"]}]},
                     {"profiles": [{"name": "team", "tools": ["band\u200bit"]}]},
                     {"profiles": [{"name": "team", "tools": [{"id": "bandit\x9b"}]}]},
                     {"product": "p\u2066"}, {"owners": ["me\x85"]}):
        with pytest.raises(manifests.ManifestInvalid):
            manifests.parse(manifest)


# -- a runtime ceiling past any clock ---------------------------------------------------------------
def _figure(minutes: int) -> str:
    return str(minutes) if abs(minutes) < 10**7 else f"{len(str(minutes))}-digits"


@pytest.mark.parametrize("minutes", [0, -1, 1441, 10**6, 2**63, 10**30, 10**400], ids=_figure)
def test_an_out_of_range_runtime_ceiling_is_refused_at_the_edge(edge, minutes):  # noqa: F811
    build, keys, client = edge
    c = make_app(build).test_client()
    key, _ = keys.create("submitter", ["ws-a"])
    answer = c.post("/v1/security-scans", json={**BODY, "manifest": {"bundle": {"runtimeCeilingMinutes": minutes}}},
                    headers=auth(key))
    assert answer.status_code == 422, answer.json
    assert "runtimeCeilingMinutes" in answer.json["error"]["fields"]["manifest"][0]
    assert client.zcard("ca:idx:all") == 0
    fine = c.post("/v1/security-scans", json={**BODY, "manifest": {"bundle": {"runtimeCeilingMinutes": 1440}}},
                  headers=auth(key))
    assert fine.status_code == 202


@pytest.mark.parametrize("minutes", [1441, 10**30, 10**400], ids=_figure)
def test_an_out_of_range_runtime_ceiling_fails_the_scan_as_manifest_invalid_in_the_worker(tmp_path, minutes):
    # A manifest from the source tree (or a URI) is only read by the worker.
    (tmp_path / "certus.json").write_text(json.dumps({"bundle": {"runtimeCeilingMinutes": minutes}}))
    with pytest.raises(manifests.ManifestInvalid) as err:
        resolve_manifest(scan_record(manifest_path="certus.json"), Settings(), tmp_path)
    assert "bundle.runtimeCeilingMinutes" in err.value.errors
    (tmp_path / "certus.json").write_text(json.dumps({"bundle": {"runtimeCeilingMinutes": 1440}}))
    resolved = resolve_manifest(scan_record(manifest_path="certus.json"), Settings(), tmp_path)
    assert resolved.ceiling_minutes == 1440 and resolved.ceiling_minutes * 60.0 < float("inf")


# -- archives nested thousands of folders deep ------------------------------------------------------
LIMITS = Limits(max_bytes=10 * 1024 * 1024, max_files=5000, max_ratio=1000)


def _tar_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _deep(depth: int) -> str:
    """A file ``depth`` levels deep: ``depth - 1`` folders and the file."""
    return "/".join(["d"] * (depth - 1) + ["x.py"])


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1000, 2000])
@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_a_very_deep_archive_is_archive_too_deep(tmp_path, depth, kind):
    archive = tmp_path / f"deep.{kind}"
    if kind == "tar":
        archive.write_bytes(_tar_bytes({_deep(depth): b"1\n"}))
    else:
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr(_deep(depth), b"1\n")
    with pytest.raises(SourceError) as err:
        extract(archive, tmp_path / "out", LIMITS)
    assert err.value.code == "archive_too_deep"
    assert list((tmp_path / "out").iterdir()) == []  # refused before its first folder was made


def test_a_deep_folder_chain_of_directory_members_is_archive_too_deep(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for depth in range(1, 1500):
            info = tarfile.TarInfo("/".join(["d"] * depth))
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
    archive = tmp_path / "dirs.tar"
    archive.write_bytes(buf.getvalue())
    with pytest.raises(SourceError) as err:
        extract(archive, tmp_path / "out", LIMITS)
    assert err.value.code == "archive_too_deep"


def test_an_archive_at_the_depth_limit_extracts(tmp_path):
    archive = tmp_path / "ok.tar"
    archive.write_bytes(_tar_bytes({_deep(MAX_DEPTH): b"1\n", "100%/a.py": b"2\n"}))
    assert extract(archive, tmp_path / "out", LIMITS) == 2
    assert (tmp_path / "out" / _deep(MAX_DEPTH)).read_bytes() == b"1\n"
    assert (tmp_path / "out" / "100%" / "a.py").read_bytes() == b"2\n"
