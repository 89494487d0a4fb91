"""Logging: human-readable console lines for development, one JSON object per line in production.

Every record carries ``test_id``, ``task_id`` and ``request_id`` when they are known.
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
import traceback
from typing import Any

from tasks.settings import Settings
from tasks.textsafe import visible

test_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("test_id", default=None)
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
task_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("task_id", default=None)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.test_id = getattr(record, "test_id", None) or test_id_var.get()
        record.task_id = getattr(record, "task_id", None) or task_id_var.get()
        record.request_id = getattr(record, "request_id", None) or request_id_var.get()
        return True


# Attributes every LogRecord has; anything else was passed with ``extra=`` and is logged as a field.
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "test_id", "task_id", "request_id", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("test_id", "task_id", "request_id"):
            value = getattr(record, key, None)
            if value:
                body[key] = value
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                body[key] = value if isinstance(value, str | int | float | bool) or value is None else str(value)
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return json.dumps(body, separators=(",", ":"))


class ConsoleFormatter(logging.Formatter):
    """One line per record, whatever its message holds: a request path, a repository's file name or
    a tool's output line cannot clear the operator's terminal or start a forged line, because every
    control character in them is shown escaped (``tasks.textsafe``). A traceback follows the line,
    indented, so a line that starts at the margin always starts a record."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = visible(record.getMessage())
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        extras = [f"{k}={visible(getattr(record, k))}" for k in ("test_id", "task_id", "request_id")
                  if getattr(record, k, None)]
        if extras:
            line += f" [{' '.join(extras)}]"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        for block in (record.exc_text, self.formatStack(record.stack_info) if record.stack_info else None):
            if block:
                line += "".join(f"\n  {visible(part)}" for part in block.split("\n"))
        return line

    def formatException(self, ei: Any) -> str:
        """The traceback's lines, with each exception's message kept to one line: a message that
        quotes a request or a file name cannot add lines of its own."""
        shown = traceback.TracebackException(*ei[:3])
        messages: set[str] = set()
        pending = [shown]
        while pending:
            exc = pending.pop()
            messages.update(exc.format_exception_only())
            pending += [e for e in (exc.__cause__, exc.__context__, *(exc.exceptions or ())) if e is not None]
        lines: list[str] = []
        for chunk in shown.format():
            text = chunk.removesuffix("\n")
            lines += [visible(text)] if chunk in messages else text.split("\n")
        return "\n".join(lines)


_configured = False


def configure_logging(settings: Settings) -> None:
    global _configured
    if _configured:
        return
    _configured = True
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(ConsoleFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # Python warnings, and exceptions no one caught (in threads too), become log records, one each,
    # so JSON mode writes nothing unstructured.
    from tasks.threadlogs import install_excepthooks

    install_excepthooks()


def bind_celery_task_context() -> None:
    """Put the running task's id (and the scan's ``test_id``) on every log record it causes.

    Connected to Celery's ``task_prerun``/``task_postrun`` signals in the worker; ``scans.run``
    takes the scan's id as its only argument, and its task id is that same id.
    """
    from celery.signals import task_postrun, task_prerun

    tokens: dict[str, tuple[contextvars.Token[str | None], contextvars.Token[str | None]]] = {}

    @task_prerun.connect(weak=False)
    def _bind(task_id: str | None = None, task: Any = None, args: Any = None, kwargs: Any = None,
              **_: Any) -> None:
        if not task_id:
            return
        test_id = (kwargs or {}).get("test_id")
        if test_id is None and args and isinstance(args[0], str) and args[0].startswith("test_"):
            test_id = args[0]
        tokens[task_id] = (task_id_var.set(task_id), test_id_var.set(test_id))

    @task_postrun.connect(weak=False)
    def _unbind(task_id: str | None = None, **_: Any) -> None:
        pair = tokens.pop(task_id or "", None)
        if pair is not None:
            task_id_var.reset(pair[0])
            test_id_var.reset(pair[1])
