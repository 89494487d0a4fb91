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
        total = 0
        for dirpath, _dirs, files in os.walk(self.folder):
            for name in files:
                try:
                    total += os.lstat(os.path.join(dirpath, name)).st_size
                except OSError:
                    continue  # written and renamed while we looked
            total += 4096 * (len(files) + 1)  # every file and folder takes a block, empty or not
        self.over = total > self.limit
        return self.over
