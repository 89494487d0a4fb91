"""Path confinement (shared by API and worker), directory copies and the source content hash."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tasks.pathsafe import UnsafePath, confine, inside, link_stays_inside
from workers.sources.directory import copy_directory, tree_hash
from workers.sources.errors import SourceError


@pytest.mark.parametrize("rel,code", [
    ("../x", "path_traversal"), ("a/../../x", "path_traversal"), ("a/..", "path_traversal"),
    ("/etc/passwd", "path_absolute"), ("\\etc", "path_absolute"), ("C:/x", "path_absolute"),
    ("%2e%2e/x", "path_invalid"), ("a//b", "path_invalid"), ("./a", "path_invalid"), ("a\x00b", "path_invalid"),
    ("", "path_invalid"), ("..\\x", "path_traversal"),
])
def test_confine_refuses(tmp_path, rel, code):
    with pytest.raises(UnsafePath) as err:
        confine(tmp_path, rel)
    assert err.value.code == code


def test_confine_refuses_links_anywhere_on_the_way(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f.txt").write_text("x")
    os.symlink(tmp_path / "real", tmp_path / "alias")
    os.symlink("real/f.txt", tmp_path / "f-link")
    assert confine(tmp_path, "real/f.txt") == tmp_path / "real" / "f.txt"
    assert confine(tmp_path, "real/missing") == tmp_path / "real" / "missing"
    for rel in ("alias/f.txt", "f-link"):
        with pytest.raises(UnsafePath) as err:
            confine(tmp_path, rel)
        assert err.value.code == "path_symlink"


def test_link_stays_inside():
    assert link_stays_inside("a/b", "../c")
    assert link_stays_inside("a", "b/c")
    assert not link_stays_inside("a", "../c")
    assert not link_stays_inside("a/b", "../../c")
    assert not link_stays_inside("a", "/etc")
    assert not link_stays_inside("a", "")


def test_inside_follows_links(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(tmp_path, root / "escape")
    assert inside(root / "x", [str(root)])
    assert not inside(root / "escape" / "other", [str(root)])
    assert not inside(tmp_path / "root2", [str(root)])


def _tree(base: Path) -> Path:
    src = base / "roots" / "proj"
    (src / "pkg").mkdir(parents=True)
    (src / "app.py").write_text("print(1)\n")
    (src / "pkg" / "mod.py").write_text("x = 1\n")
    (base / "secret.txt").write_text("outside")
    os.symlink("../app.py", src / "pkg" / "ok-link")
    os.symlink(str(base / "secret.txt"), src / "abs-link")
    os.symlink("../../secret.txt", src / "rel-escape")
    os.symlink(".", src / "dot")
    os.symlink("dot/../../secret.txt", src / "chain-escape")
    os.mkfifo(src / "pipe")
    return src


def test_directory_copy_skips_links_out_and_special_files(tmp_path):
    src = _tree(tmp_path)
    dest = tmp_path / "work" / "src"
    report = copy_directory(str(src), dest, (str(tmp_path / "roots"),), max_files=100, max_bytes=10_000)
    assert (dest / "app.py").read_text() == "print(1)\n"
    assert os.readlink(dest / "pkg" / "ok-link") == "../app.py"
    for name in ("abs-link", "rel-escape", "chain-escape", "pipe"):
        assert not os.path.lexists(dest / name), name
    assert report.skipped == {"links leaving the folder": 3, "special files": 1}
    assert report.files == 2


def test_directory_outside_roots_and_limits(tmp_path):
    src = _tree(tmp_path)
    with pytest.raises(SourceError) as err:
        copy_directory(str(src), tmp_path / "a", (str(tmp_path / "elsewhere"),), max_files=100, max_bytes=10_000)
    assert err.value.code == "path_not_allowed"
    os.symlink(tmp_path, tmp_path / "roots" / "up")
    with pytest.raises(SourceError) as err:
        copy_directory(str(tmp_path / "roots" / "up" / "secret.txt"), tmp_path / "b", (str(tmp_path / "roots"),),
                       max_files=100, max_bytes=10_000)
    assert err.value.code == "path_not_allowed"
    with pytest.raises(SourceError) as err:
        copy_directory(str(src), tmp_path / "c", (str(tmp_path / "roots"),), max_files=1, max_bytes=10_000)
    assert err.value.code == "too_many_files"
    with pytest.raises(SourceError) as err:
        copy_directory(str(src), tmp_path / "d", (str(tmp_path / "roots"),), max_files=100, max_bytes=5)
    assert err.value.code == "source_too_large"


def test_tree_hash_depends_on_content_only(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        (root / "d").mkdir(parents=True)
        (root / "d" / "x.py").write_text("1")
        (root / "y.py").write_text("2")
    (b / ".git").mkdir()
    (b / ".git" / "HEAD").write_text("ref")
    assert tree_hash(a) == tree_hash(b)
    (b / "y.py").write_text("3")
    assert tree_hash(a) != tree_hash(b)


def test_a_directory_source_goes_through_the_link_check_and_is_hashed_after_it(tmp_path):
    from tasks.records import ScanRecord
    from tasks.settings import Settings
    from workers.redact import Redactor
    from workers.sources.fetch import fetch_source

    src = _tree(tmp_path)
    dest = tmp_path / "work" / "src"
    settings = Settings(allowed_source_roots=(str(tmp_path / "roots"),))
    fetched = record = ScanRecord(test_id="test_00000000abcd", workspace_id="ws", component_id="c", assessment_id="a",
                        profile="light", source_type="directory", directory_path=str(src))
    fetched = fetch_source(settings, record, dest, Redactor())
    # `dot -> .` stays inside by its text, so the copy keeps it; followed, it leads back to the root.
    assert fetched.warnings == [
        {"code": "source_entries_skipped", "message": "3 links leaving the folder were not copied"},
        {"code": "source_entries_skipped", "message": "1 special files were not copied"},
        {"code": "symlinks_removed", "message": "1 symbolic links were removed (1 looping): dot"},
    ]
    assert not os.path.lexists(dest / "dot") and os.readlink(dest / "pkg" / "ok-link") == "../app.py"
    assert fetched.hash == tree_hash(dest)
