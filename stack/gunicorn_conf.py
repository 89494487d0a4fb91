"""gunicorn settings shared by every way the API is started (``--config python:stack.gunicorn_conf``)."""

from __future__ import annotations

import logging
import os
from typing import Any

from gunicorn.glogging import Logger, SafeAtoms

from tasks.textsafe import visible


def child_exit(server: Any, worker: Any) -> None:
    # A gunicorn worker that exits takes its live gauges (open streams) with it. Imported here, not
    # at the top: the master must not load ssl before the gevent workers patch it.
    from tasks import metrics

    metrics.mark_process_dead(worker.pid)


def _access_log() -> str | None:
    # In JSON mode the API logs each request itself (one JSON line with the request id).
    return None if os.environ.get("CERTUS_ASSURANCE_LOG_FORMAT", "console") == "json" else "-"


accesslog = _access_log()
# The longest request line gunicorn takes (its most): a findings query's filters, percent-encoded,
# fit in it (app/schemas/findings.py); a longer line is refused with 414.
limit_request_line = 8190


def _wsgi_text(value: str) -> str:
    # WSGI hands the request's bytes over as latin-1 text; read them as the UTF-8 they usually are,
    # so an escaped U+202E shows as \u202e rather than as three unrelated characters.
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


class EscapedAtoms(SafeAtoms):
    """The access-log fields with every control character escaped: a ``%0a`` or ``%1b`` in a
    request path (or a header) cannot start a forged log line or reach an operator's terminal."""

    def __init__(self, atoms: dict[str, Any]) -> None:
        super().__init__({k: visible(_wsgi_text(v)) if isinstance(v, str) else v for k, v in atoms.items()})


class _OneLine(logging.Filter):
    """gunicorn's own messages quote what a client sent (an invalid request line, a URI): escaped too."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = visible(record.getMessage()), ()
        return True


_ONE_LINE = _OneLine()


class EscapingLogger(Logger):
    atoms_wrapper_class = EscapedAtoms

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        self.error_log.addFilter(_ONE_LINE)


logger_class = EscapingLogger


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


def post_fork(server: Any, worker: Any) -> None:
    # Out of file descriptors, a new connection is answered 503 rather than left waiting.
    from stack.fd_shedding import install

    install(worker)
