"""Per-scan event emission: redaction first, then the scan's Redis Stream."""

from __future__ import annotations

import logging
from typing import Any

from tasks.events import EventLog
from workers.redact import Redactor

log = logging.getLogger(__name__)


class ScanEmitter:
    def __init__(self, events: EventLog, test_id: str, redactor: Redactor) -> None:
        self.events = events
        self.test_id = test_id
        self.redactor = redactor

    def emit(self, event_type: str, **fields: Any) -> str:
        return self.events.append(self.test_id, event_type, **self.redactor.value(fields))

    def phase(self, phase: str, message: str, **fields: Any) -> str:
        return self.emit("phase", phase=phase, message=message, **fields)

    def error(self, code: str, message: str, **fields: Any) -> str:
        return self.emit("error", code=code, message=message, **fields)
