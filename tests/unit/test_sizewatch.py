"""The size watch on a sandbox's output folder: it counts what is written and no shape of tree
(however deep) crashes it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from workers.sandbox import scrub
from workers.sizewatch import SizeWatch


def _deep(root: Path, depth: int) -> None:
    fd = os.open(root, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            inner = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        with open(os.open("f", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd), "wb") as fh:
            fh.write(b"x" * 10_000)
    finally:
        os.close(fd)


def test_a_tree_deeper_than_the_recursion_limit_is_measured(tmp_path):
    depth = sys.getrecursionlimit() + 200
    _deep(tmp_path, depth)
    try:
        small = SizeWatch(tmp_path, limit=10**9)
        assert not small.exceeded()
        tight = SizeWatch(tmp_path, limit=4096 * depth)  # every folder takes a block
        assert tight.exceeded()
    finally:
        scrub(tmp_path, max_depth=0)  # without recursion: pytest's own clean-up could not


def test_files_count_with_their_size(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 50_000)
    assert not SizeWatch(tmp_path, limit=60_000).exceeded()
    assert SizeWatch(tmp_path, limit=50_000).exceeded()
