"""What a worker's threads and libraries print becomes log records, whole.

Celery's worker hands stdout and stderr to a logger one ``write()`` at a time, and Python prints
an uncaught exception of a thread in many small writes (each caret of a traceback's ``^^^^`` line
is one), so one traceback became hundreds of one-character records. Here:

* an uncaught exception, in a thread or not, is logged as one record with its traceback
  (logger ``certus.uncaught``);
* stdout and stderr are logged a whole line at a time (logger ``celery.redirected``, level
  WARNING, as Celery's own redirection did): a write without a newline waits for the rest of
  its line;
* warnings go through logging (``py.warnings``), one record each.
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from celery import Celery
from celery.signals import celeryd_after_setup, worker_process_init
from celery.utils.log import LoggingProxy

log = logging.getLogger("certus.uncaught")


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "unknown"
    log.error("uncaught exception in thread %s", name,
              exc_info=(args.exc_type, args.exc_value, args.exc_traceback))  # type: ignore[arg-type]


def _excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    log.critical("uncaught exception", exc_info=(exc_type, exc, tb))


def install_excepthooks() -> None:
    """Uncaught exceptions (in threads too) become one log record each, traceback included."""
    threading.excepthook = _thread_excepthook
    sys.excepthook = _excepthook
    logging.captureWarnings(True)


class LineLoggingProxy(LoggingProxy):
    """Celery's stdout/stderr proxy, logging a whole line per record instead of each write."""

    def __init__(self, logger: logging.Logger, loglevel: int | str | None = None) -> None:
        super().__init__(logger, loglevel)
        self._pending = threading.local()  # each thread's unfinished line

    def write(self, data: str) -> int:
        text = getattr(self._pending, "text", "") + str(data)
        if "\n" not in text:
            self._pending.text = text
            return len(data)
        lines, _, self._pending.text = text.rpartition("\n")
        super().write(lines)
        return len(data)

    def flush(self) -> None:
        text, self._pending.text = getattr(self._pending, "text", ""), ""
        if text:
            super().write(text)


def redirect_std_streams(level: str = "WARNING") -> None:
    """Send stdout and stderr to the ``celery.redirected`` logger, a line per record."""
    if isinstance(sys.stdout, LineLoggingProxy):
        return
    proxy = LineLoggingProxy(logging.getLogger("celery.redirected"), level)
    sys.stdout = sys.stderr = proxy
    atexit.register(proxy.flush)


def install_in_worker(app: Celery, after_setup: Callable[[], None] | None = None) -> None:
    """In a worker, in place of Celery's own redirection: the hooks now, the line-wise streams
    once Celery has set up its logging (main process), kept by each pool process it forks.
    ``after_setup`` runs then too, in every process (Celery resets warning filters there)."""
    app.conf.worker_redirect_stdouts = False
    install_excepthooks()

    def _main(**_: Any) -> None:
        redirect_std_streams()
        if after_setup is not None:
            after_setup()

    def _child(**_: Any) -> None:
        install_excepthooks()
        redirect_std_streams()
        if after_setup is not None:
            after_setup()

    celeryd_after_setup.connect(_main, weak=False)
    worker_process_init.connect(_child, weak=False)
