"""gunicorn settings shared by every way the API is started (``--config python:stack.gunicorn_conf``)."""

from __future__ import annotations

import os
from typing import Any


def child_exit(server: Any, worker: Any) -> None:
    # A gunicorn worker that exits takes its live gauges (open streams) with it. Imported here, not
    # at the top: the master must not load ssl before the gevent workers patch it.
    from tasks import metrics

    metrics.mark_process_dead(worker.pid)


def _access_log() -> str | None:
    # In JSON mode the API logs each request itself (one JSON line with the request id).
    return None if os.environ.get("CERTUS_ASSURANCE_LOG_FORMAT", "console") == "json" else "-"


accesslog = _access_log()
