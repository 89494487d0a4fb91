"""Measures a folder that a sandboxed process writes while it runs, so a clone or a tool that
would fill the disk is stopped at its limit instead of after. Measures at most once a second."""

from __future__ import annotations

import os
import time
from pathlib import Path


class SizeWatch:
    def __init__(self, folder: Path, limit: int) -> None:
        self.folder = folder
        self.limit = limit
        self.over = False
        self._next = 0.0

    def exceeded(self) -> bool:
        now = time.monotonic()
        if self.over or now < self._next:
            return self.over
        self._next = now + 1.0
        self.over = _size(self.folder, self.limit) > self.limit
        return self.over


def _size(folder: Path, stop_above: int) -> int:
    """Bytes a tree takes (each file's size, and a block for every file and folder), walked with a
    stack rather than by recursion, so no depth of folders can crash the watch; stops once over."""
    total = 0
    pending = [str(folder)]
    while pending and total <= stop_above:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError:
            continue  # removed or renamed while we looked
        total += 4096
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                else:
                    total += entry.stat(follow_symlinks=False).st_size + 4096
            except OSError:
                continue
    return total
