"""Links in a fetched source: which are removed, which stay, and the warning that names them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from workers.sources import links
from workers.sources.links import remove_unsafe_links


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg" / "real.py").write_text("x = 1\n")
    (tmp_path / "outside.txt").write_text("outside")
    os.mkfifo(tmp_path / "fifo")
    os.mkfifo(root / "pkg" / "pipe")  # no source type delivers one; a link to it must still go
    return root


def _links(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_symlink()}


def test_each_unsafe_kind_is_removed_and_safe_links_stay(tree):
    os.symlink("pkg/real.py", tree / "alias.py")
    os.symlink("pkg", tree / "pkg-alias")
    os.symlink("pkg-alias/real.py", tree / "through-alias.py")
    os.symlink("../real.py", tree / "pkg" / "sub" / "up-file.py")
    expected = {
        "passwd": ("/etc/passwd", "absolute"),
        "zero": ("/dev/zero", "absolute"),
        "abs-inside": (str(tree / "pkg" / "real.py"), "absolute"),  # inside, but absolute
        "escape": ("../outside.txt", "outside"),
        "fifo-out": ("../fifo", "outside"),
        "fifo-in": ("pkg/pipe", "special"),
        "gone": ("missing.py", "dangling"),
        "loop-a": ("loop-b", "loop"),
        "loop-b": ("loop-a", "loop"),
        "self": ("self", "loop"),
        "pkg/sub/up": ("..", "loop"),
        "root-dot": (".", "loop"),
    }
    for rel, (target, _) in expected.items():
        os.symlink(target, tree / rel)
    report = remove_unsafe_links(tree)
    assert report.removed == {rel: reason for rel, (_, reason) in expected.items()}
    assert _links(tree) == {"alias.py", "pkg-alias", "through-alias.py", "pkg/sub/up-file.py"}
    assert (tree / "alias.py").read_text() == (tree / "through-alias.py").read_text() == "x = 1\n"
    assert (tree / "pkg" / "sub" / "up-file.py").read_text() == "x = 1\n"
    assert remove_unsafe_links(tree).removed == {}  # nothing left to remove


def test_a_link_through_a_removed_link_goes_too(tree):
    # Each resolves inside the tree, but only through an absolute link, which is removed first.
    os.symlink(str(tree / "pkg"), tree / "abs-dir")
    os.symlink("abs-dir/real.py", tree / "via.py")
    os.symlink("via.py", tree / "via-via.py")
    report = remove_unsafe_links(tree)
    assert report.removed == {"abs-dir": "absolute", "via.py": "dangling", "via-via.py": "dangling"}
    assert _links(tree) == set()


def test_a_chain_that_escapes_only_when_followed_is_removed(tree):
    # The text "../../s/.." stays inside; followed, `s` is the root itself and `..` leaves it.
    os.symlink(".", tree / "s")
    os.symlink("../../s/..", tree / "pkg" / "sub" / "escape")
    report = remove_unsafe_links(tree)
    assert report.removed["pkg/sub/escape"] == "outside"
    assert not os.path.lexists(tree / "pkg" / "sub" / "escape")


def test_folder_links_that_lead_to_each_other_loop(tree):
    (tree / "a").mkdir()
    (tree / "b" / "deep").mkdir(parents=True)
    (tree / "c").mkdir()
    os.symlink("../b", tree / "a" / "to-b")
    os.symlink("../../a", tree / "b" / "deep" / "to-a")  # a/to-b/deep/to-a/to-b/... never ends
    os.symlink("../c", tree / "a" / "to-c")  # leads on from the loop, but not back: stays
    os.symlink("a/to-b", tree / "entry")  # not on the loop, but it dangles once a/to-b is gone
    report = remove_unsafe_links(tree)
    assert report.removed == {"a/to-b": "loop", "b/deep/to-a": "loop", "entry": "dangling"}
    assert _links(tree) == {"a/to-c"}


def test_folder_links_that_multiply_are_all_removed(tree, monkeypatch):
    # level{n}/x and level{n}/y both lead to level{n-1}: 2 + 4 + 8 + ... folders through links.
    monkeypatch.setattr(links, "MAX_LINK_ROUTES", 100)
    (tree / "level0").mkdir()
    for n in range(1, 8):
        (tree / f"level{n}").mkdir()
        for name in ("x", "y"):
            os.symlink(f"../level{n - 1}", tree / f"level{n}" / name)
    os.symlink("pkg/real.py", tree / "alias.py")
    report = remove_unsafe_links(tree)
    assert set(report.removed.values()) == {"fan-out"} and len(report.removed) == 14
    assert _links(tree) == {"alias.py"}


def test_few_folder_links_that_share_a_target_stay(tree, monkeypatch):
    monkeypatch.setattr(links, "MAX_LINK_ROUTES", 100)
    for n in range(20):
        os.symlink("pkg", tree / f"alias{n}")
    assert remove_unsafe_links(tree).removed == {}


def test_the_warning_counts_and_names_a_few_paths_as_plain_text(tree):
    assert remove_unsafe_links(tree).warning() is None
    names = [f"l{n:02d}" for n in range(10)] + ["bad\x1b[31m\nname"]
    for name in names:
        os.symlink("/etc/passwd", tree / name)
    os.symlink("missing", tree / "z-gone")
    warning = remove_unsafe_links(tree).warning()
    assert warning is not None and warning["code"] == "symlinks_removed"
    message = warning["message"]
    assert message.startswith("12 symbolic links were removed (11 absolute, 1 dangling): ")
    assert "bad?[31m?name" in message and "\x1b" not in message and "\n" not in message
    assert "l00" in message and "l06" in message and "l07" not in message and message.endswith("(and 4 more)")


def test_links_leaving(tree):
    os.symlink("../outside.txt", tree / "escape")
    os.symlink("pkg/real.py", tree / "alias.py")
    assert links.links_leaving(tree) == [tree / "escape"]
