"""Property-based fuzzing (hypothesis) of three parsers that take hostile input: the JSON depth
pre-check, the archive extractor and the manifest parser. Each property is what the service relies
on; example counts are bounded so each test takes a few seconds, and the runs are derandomised
(the same examples every time), so a failure is reproducible and CI never flakes on a new draw.
"""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
import tempfile
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from app.limits import json_depth, too_deep
from tasks import manifest as manifests
from tasks.textsafe import visible
from workers.sources.archive import Limits, extract
from workers.sources.errors import SourceError

FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# -- the JSON depth pre-check -----------------------------------------------------------------------
def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


_tricky_text = st.text(alphabet=st.sampled_from('[]{}"\\ab\u202e\x00\n/é'), max_size=8)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _tricky_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_tricky_text, children, max_size=4),
    max_leaves=60)


@FUZZ
@given(_json_values, st.booleans(), st.sampled_from([None, 0, 1, 2]))
def test_the_depth_of_valid_json_is_what_the_parser_sees(value, ascii_only, indent):
    data = json.dumps(value, ensure_ascii=ascii_only, indent=indent).encode()
    assert json_depth(data) == _depth(json.loads(data))
    for limit in (0, 1, 3, 32):
        assert too_deep(data, limit) is (_depth(value) > limit)


PATHOLOGICAL = [b'"\\', b"\\", b'\\"', b"[", b"{", b'"', b'["', b'"[', b'\\\\"', b'"\\"\\', b"[\\", b'{"a":"\\']


@FUZZ
@given(st.binary(max_size=512))
@example(b'"' + b"\\" * 5000)
@example(b"[" * 40 + b'"\\' * 5000)
@example(b"[" * 40 + b'"' + b'\\"' * 5000)
@example(b"[" * 10000)
@example(b'["' + b"[{" * 5000)
def test_the_pre_check_never_raises_on_any_bytes(data):
    depth = json_depth(data)
    assert isinstance(depth, int) and 0 <= depth <= data.count(b"[") + data.count(b"{")
    assert too_deep(data, 32) is (depth > 32)


def _benign(size: int) -> bytes:
    unit = b'[{"name": "scan", "tags": ["a", "b\\"c"], "n": [1, 2, 3]}], '
    return (b'{"items": ' + unit * (size // len(unit) + 1))[:size]


def _seconds(data: bytes) -> float:
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        json_depth(data)
        best = min(best, time.perf_counter() - start)
    return best


SIZE = 32 * 1024  # enough to tell linear from quadratic (the old walk took seconds here); 1 MiB is
#                   tested in test_json_precheck.py


@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=1, max_size=16))
@example(PATHOLOGICAL[0])
@example(PATHOLOGICAL[2])
@example(PATHOLOGICAL[8])
@example(PATHOLOGICAL[9])
@example(b"[" * 8)
def test_the_pre_check_takes_linear_time_whatever_the_bytes(fragment):
    # Any fragment repeated to 32 KiB is walked in about the time of a benign body that size; a
    # walk that backtracks (as the old regular expression did on '"\' runs) takes orders longer.
    hostile = (b"[" * 40 + fragment * (SIZE // len(fragment) + 1))[:SIZE]
    assert _seconds(hostile) <= 10 * _seconds(_benign(SIZE)) + 0.05


# -- the archive extractor ---------------------------------------------------------------------------
_part = st.sampled_from(["a", "b", "pkg", "..", ".", "", "%2e%2e", "C:", "x" * 300, "\u202e", "é", "..\\..",
                         "victim", "lnk", " ", "a%", "~"])
_member_name = st.lists(_part, min_size=1, max_size=5).map("/".join) | st.sampled_from(
    ["/etc/passwd", "../victim/owned", "lnk/owned", "a/../../victim/owned", "\\victim", "C:/x", "./a", "a//b"])
_link_target = _member_name | st.sampled_from(["/", "/etc", "..", "../victim", "lnk", ".", "a/b/../../.."])
_member = st.tuples(st.sampled_from(["file", "file", "dir", "symlink", "hardlink", "fifo", "chardev"]),
                    _member_name, _link_target, st.integers(min_value=0, max_value=3000),
                    st.sampled_from([0o644, 0o755, 0o4777, 0]))


def _tar(members: list[tuple[str, str, str, int, int]], path: Path) -> None:
    kinds = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
             "fifo": tarfile.FIFOTYPE, "chardev": tarfile.CHRTYPE}
    with tarfile.open(path, "w:gz") as tar:
        for kind, name, target, size, mode in members:
            info = tarfile.TarInfo(name)
            info.mode = mode
            if kind == "file":
                info.size = size
                tar.addfile(info, io.BytesIO(b"\0" * size))
            else:
                info.type = kinds[kind]
                info.linkname = target
                tar.addfile(info)


def _zip(members: list[tuple[str, str, str, int, int]], path: Path) -> None:
    fmt = {"dir": stat.S_IFDIR, "symlink": stat.S_IFLNK, "fifo": stat.S_IFIFO, "chardev": stat.S_IFCHR}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # duplicate names are part of the game
        for kind, name, target, size, mode in members:
            info = zipfile.ZipInfo(name + ("/" if kind == "dir" and not name.endswith("/") else ""))
            info.external_attr = (fmt.get(kind, stat.S_IFREG) | (mode & 0o7777)) << 16
            zf.writestr(info, target if kind == "symlink" else b"\0" * size)


def _within(path: str, folder: Path) -> bool:
    return path == str(folder) or path.startswith(str(folder) + os.sep)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            st_ = os.lstat(os.path.join(dirpath, name))
            out[os.path.join(dirpath, name)] = (st_.st_size, st_.st_mtime_ns)
    return out


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(_member, min_size=1, max_size=8), st.sampled_from(["tar.gz", "zip"]))
@example([("symlink", "lnk", "../victim", 0, 0o777), ("file", "lnk/owned", "", 3, 0o644)], "tar.gz")
@example([("hardlink", "h", "../victim/secret", 0, 0o644)], "tar.gz")
@example([("file", "100%/a", "", 1, 0o644), ("file", "100%/a/b", "", 1, 0o644)], "tar.gz")
@example([("symlink", "lnk", "/", 0, 0o777), ("dir", "lnk/x", "", 0, 0o755)], "zip")
@example([("file", "/".join(["d"] * 150), "", 1, 0o644)], "zip")
def test_the_extractor_writes_only_inside_its_destination_and_fails_only_with_its_own_error(members, fmt):
    with tempfile.TemporaryDirectory() as tmp:
        box = Path(tmp)
        victim = box / "victim"
        victim.mkdir()
        (victim / "secret").write_text("keep")
        archive = box / f"in.{fmt}"
        (_tar if fmt == "tar.gz" else _zip)(members, archive)
        dest = box / "dest"
        outside = _snapshot(box)
        try:
            extract(archive, dest, Limits(max_bytes=8000, max_files=6, max_ratio=1000, max_depth=8))
        except SourceError as exc:
            assert exc.code.startswith("archive_"), exc.code
        after = _snapshot(box)
        assert {p: v for p, v in after.items() if not _within(p, dest)} == outside
        assert (victim / "secret").read_text() == "keep"
        for path in Path(dest).rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert os.stat(path).st_mode & 0o7000 == 0  # no setuid, setgid or sticky bits kept


# -- the manifest parser -----------------------------------------------------------------------------
_scalar = (st.none() | st.booleans() | st.integers() | st.integers(min_value=10**18, max_value=10**400)
           | st.floats(allow_nan=True) | st.text(max_size=8)
           | st.sampled_from(["bandit", "light", "Team", "high", "critical", "team\u202e", "\x9b", ""]))
_any_json = st.recursive(_scalar, lambda children: st.lists(children, max_size=3)
                         | st.dictionaries(st.text(max_size=6), children, max_size=3), max_leaves=20)
_tool = st.sampled_from(["bandit", "semgrep", "Ruff ", "acme", "band\u200bit", ""]) | st.fixed_dictionaries(
    {}, optional={"id": _scalar, "name": _scalar, "config": _any_json})
_profile = st.fixed_dictionaries({}, optional={
    "name": _scalar, "tools": st.lists(_tool, max_size=4) | _any_json,
    "thresholds": st.dictionaries(st.sampled_from(["critical", "high", "medium", "low", "info", "severe", "\u202e"]),
                                  _scalar, max_size=4) | _any_json})
_manifest = st.fixed_dictionaries({}, optional={
    "product": _scalar, "version": _scalar, "owners": st.lists(_scalar, max_size=3) | _any_json,
    "profiles": st.lists(_profile | _any_json, max_size=3) | _any_json,
    "bundle": st.fixed_dictionaries({}, optional={"runtimeCeilingMinutes": _scalar}) | _any_json,
    "extra": _any_json})
_documents = _manifest | _manifest.map(lambda m: {"manifest": m}) | _any_json


@FUZZ
@given(_documents)
@example({"bundle": {"runtimeCeilingMinutes": 10**400}})
@example({"bundle": {"runtimeCeilingMinutes": 2**63}})
@example({"bundle": {"runtimeCeilingMinutes": float("inf")}})
@example({"profiles": [{"name": "x", "thresholds": {"high": 10**400}}]})
@example({"profiles": [{"name": "\u202eteam", "tools": ["bandit"]}]})
@example({"manifest": {"manifest": {}}})
@example({"profiles": [{"name": "x", "tools": [{"id": "bandit", "config": []}]}]})
def test_the_manifest_parser_answers_a_manifest_or_manifest_invalid(document):
    try:
        parsed = manifests.parse(document)
    except manifests.ManifestInvalid as exc:
        assert exc.errors and all(isinstance(k, str) and v for k, v in exc.errors.items())
        assert all(visible(k) == k for k in exc.errors)  # paths echo no hidden characters
        return
    ceiling = parsed.runtime_ceiling_minutes
    assert ceiling is None or (type(ceiling) is int and 1 <= ceiling <= manifests.MAX_RUNTIME_CEILING_MINUTES)
    for key, profile in parsed.profiles.items():
        assert key == key.lower() and visible(profile.name) == profile.name
        assert all(isinstance(t, str) and t and visible(t) == t for t in profile.tools)
        assert all(type(v) is int and v >= 0 for v in profile.thresholds.values())
    assert json.loads(manifests.inline_text(parsed.raw)) is not None  # the digested text can be written
