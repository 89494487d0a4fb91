"""Archive extraction against hostile archives built for each case, and good ones of each format."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from workers.sources.archive import Limits, extract
from workers.sources.errors import SourceError

LIMITS = Limits(max_bytes=5 * 1024 * 1024, max_files=100, max_ratio=50)
FILES = {"app.py": b"import os\nos.system('x')\n", "pkg/mod.py": b"x = 1\n"}


def _tar(path: Path, mode: str, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, mode) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = 0o644
    return info, data


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


@pytest.mark.parametrize("name,mode", [("src.tar", "w"), ("src.tar.gz", "w:gz"), ("src.tgz", "w:gz"),
                                       ("src.tar.bz2", "w:bz2")])
def test_tar_formats_extract(tmp_path, name, mode):
    archive = _tar(tmp_path / name, mode, [_file(n, d) for n, d in FILES.items()]
                   + [_link("link.py", "app.py"), _link("pkg/up.py", "../app.py")])
    dest = tmp_path / "out"
    assert extract(archive, dest, LIMITS) == 4
    assert (dest / "app.py").read_bytes() == FILES["app.py"]
    assert (dest / "pkg/mod.py").read_bytes() == FILES["pkg/mod.py"]
    assert os.readlink(dest / "pkg/up.py") == "../app.py"


def test_zip_extracts_with_inner_link(tmp_path):
    archive = tmp_path / "src.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, d in FILES.items():
            zf.writestr(n, d)
        info = zipfile.ZipInfo("alias.py")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "app.py")
    dest = tmp_path / "out"
    assert extract(archive, dest, LIMITS) == 3
    assert (dest / "pkg/mod.py").read_bytes() == b"x = 1\n"
    assert os.readlink(dest / "alias.py") == "app.py"


@pytest.mark.parametrize("members,code", [
    ([_file("../evil.py", b"x")], "archive_path_traversal"),
    ([_file("a/../../evil.py", b"x")], "archive_path_traversal"),
    ([_file("/tmp/evil.py", b"x")], "archive_absolute_path"),
    ([_link("etc", "/etc")], "archive_link_escape"),
    ([_link("up", "../..")], "archive_link_escape"),
    # a link that looks inside, but leads out through another link
    ([_link("d", "."), _link("x", "d/../../outside")], "archive_link_escape"),
    # writing through a link an earlier member created
    ([_link("inner", "."), _file("inner/../../evil.py", b"x")], "archive_path_traversal"),
    ([_link("sub", "pkg"), _file("pkg/a.py", b"1"), _file("sub/b.py", b"2")], "archive_link_escape"),
    ([_link("h", "/etc/passwd", tarfile.LNKTYPE)], "archive_link_escape"),
    ([_link("h", "../outside", tarfile.LNKTYPE)], "archive_link_escape"),
    ([_link("h", "missing.py", tarfile.LNKTYPE)], "archive_link_escape"),
])
def test_hostile_tar_members_are_refused(tmp_path, members, code):
    archive = _tar(tmp_path / "bad.tar", "w", members)
    dest = tmp_path / "out"
    with pytest.raises(SourceError) as err:
        extract(archive, dest, LIMITS)
    assert err.value.code == code
    assert not (tmp_path / "evil.py").exists() and not (tmp_path / "outside").exists()


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_device_files_and_fifos_are_refused(tmp_path, kind):
    info = tarfile.TarInfo("dev")
    info.type = kind
    info.devmajor, info.devminor = 1, 3
    archive = _tar(tmp_path / "dev.tar", "w", [(info, None)])
    with pytest.raises(SourceError) as err:
        extract(archive, tmp_path / "out", LIMITS)
    assert err.value.code == "archive_special_file"
    assert not (tmp_path / "out" / "dev").exists()


def test_hardlink_inside_is_copied(tmp_path):
    archive = _tar(tmp_path / "h.tar", "w", [_file("a.py", b"abc"), _link("b.py", "a.py", tarfile.LNKTYPE)])
    dest = tmp_path / "out"
    extract(archive, dest, LIMITS)
    assert (dest / "b.py").read_bytes() == b"abc"
    assert os.stat(dest / "a.py").st_ino != os.stat(dest / "b.py").st_ino


def test_ratio_bomb_is_refused_on_bytes_written(tmp_path):
    archive = _tar(tmp_path / "bomb.tar.gz", "w:gz", [_file("zeros.bin", b"\0" * (4 * 1024 * 1024))])
    assert archive.stat().st_size < 50_000
    with pytest.raises(SourceError) as err:
        extract(archive, tmp_path / "out", LIMITS)
    assert err.value.code == "archive_ratio_exceeded"


def test_zip_bomb_with_lying_header_is_refused(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * (4 * 1024 * 1024))
    with pytest.raises(SourceError) as err:
        extract(archive, tmp_path / "out", LIMITS)
    assert err.value.code == "archive_ratio_exceeded"


def test_total_size_limit(tmp_path):
    data = os.urandom(3 * 1024 * 1024)  # incompressible: the ratio stays near 1
    archive = _tar(tmp_path / "big.tar", "w", [_file("a.bin", data), _file("b.bin", data)])
    with pytest.raises(SourceError) as err:
        extract(archive, tmp_path / "out", LIMITS)
    assert err.value.code == "archive_too_large"


def test_file_count_limit(tmp_path):
    archive = _tar(tmp_path / "many.tar", "w", [_file(f"f{i}.py", b"1") for i in range(101)])
    with pytest.raises(SourceError) as err:
        extract(archive, tmp_path / "out", LIMITS)
    assert err.value.code == "archive_too_many_files"


def test_zip_traversal_and_absolute(tmp_path):
    for name, code in (("../evil.py", "archive_path_traversal"), ("/abs.py", "archive_absolute_path"),
                       ("..\\evil.py", "archive_path_traversal"), ("C:/x.py", "archive_absolute_path")):
        archive = tmp_path / "bad.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr(zipfile.ZipInfo(name), b"x")
        with pytest.raises(SourceError) as err:
            extract(archive, tmp_path / f"out-{code}", LIMITS)
        assert err.value.code == code, name


def test_damaged_and_misnamed_archives(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"this is not gzip")
    with pytest.raises(SourceError) as err:
        extract(bad, tmp_path / "out", LIMITS)
    assert err.value.code == "archive_invalid"
    other = tmp_path / "x.rar"
    other.write_bytes(b"x")
    with pytest.raises(SourceError) as err:
        extract(other, tmp_path / "out2", LIMITS)
    assert err.value.code == "archive_format_unsupported"


def test_dot_prefixed_members_and_percent_names_extract(tmp_path):
    root = tarfile.TarInfo(".")
    root.type = tarfile.DIRTYPE
    archive = _tar(tmp_path / "dot.tar.gz", "w:gz", [(root, None), _file("./app.py", b"1"),
                                                     _file("./pkg/100%.txt", b"2"),
                                                     _link("./pkg/h.py", "./app.py", tarfile.LNKTYPE)])
    dest = tmp_path / "out"
    extract(archive, dest, LIMITS)
    assert (dest / "app.py").read_bytes() == b"1"
    assert (dest / "pkg" / "100%.txt").read_bytes() == b"2"
    assert (dest / "pkg" / "h.py").read_bytes() == b"1"
    assert sorted(p.name for p in dest.iterdir()) == ["app.py", "pkg"]
