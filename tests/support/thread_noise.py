"""Loaded into a test worker with ``celery worker --include tests.support.thread_noise``: once the
worker is ready, and in each pool process it starts, a background thread prints, warns and dies
of an uncaught exception, as library and scanner-runner threads do."""

from __future__ import annotations

import os
import threading
import time
import warnings
from typing import Any

from celery.signals import worker_process_init, worker_ready


def _noise(where: str) -> None:
    print(f"printed by a thread in the {where} ({os.getpid()})")
    print("partial ", end="")
    print("line, then the rest")
    warnings.warn(f"a warning from a thread in the {where}", UserWarning, stacklevel=1)
    time.sleep(0.1)
    counts = {"done": [1, 2, 3]}
    print(counts["done"][0] / (counts["done"][1] - 2))  # dies here; Python marks the spot with ^^^^


def _start(where: str) -> None:
    threading.Thread(target=_noise, args=(where,), name=f"noise-{where}", daemon=True).start()


@worker_ready.connect(weak=False)
def _in_main(**_: Any) -> None:
    _start("main process")


@worker_process_init.connect(weak=False)
def _in_pool(**_: Any) -> None:
    _start("pool process")
