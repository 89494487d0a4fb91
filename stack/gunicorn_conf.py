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


def _logconfig() -> dict[str, Any]:
    # In JSON mode gunicorn's own lines (start, worker boot and exit) are JSON objects too.
    if os.environ.get("CERTUS_ASSURANCE_LOG_FORMAT", "console") != "json":
        return {}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "tasks.logconfig.JsonFormatter"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json",
                                 "stream": "ext://sys.stdout"}},
        "root": {"level": "INFO", "handlers": ["console"]},
        "loggers": {"gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False}},
    }


logconfig_dict = _logconfig()


def post_worker_init(worker: Any) -> None:
    # The app, Celery and their imports are long-lived: move them out of the collector's sight,
    # so a full collection under load walks only what requests allocate.
    import gc

    gc.freeze()
