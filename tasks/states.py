"""The named values of the contract: scan status, upload status and tier, severity.

Each is a ``StrEnum``, so a value is its own wire form (``ScanStatus.QUEUED == "QUEUED"``) and is
stored, sent and compared as the plain string clients already know.
"""

from __future__ import annotations

from enum import StrEnum


class ScanStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL: frozenset[ScanStatus] = frozenset({ScanStatus.SUCCEEDED, ScanStatus.FAILED, ScanStatus.CANCELLED})

# Which status may follow which. RUNNING -> RUNNING is a restart after a lost worker.
TRANSITIONS: dict[ScanStatus, frozenset[ScanStatus]] = {
    ScanStatus.QUEUED: frozenset({ScanStatus.RUNNING, ScanStatus.FAILED, ScanStatus.CANCELLED}),
    ScanStatus.RUNNING: frozenset({ScanStatus.RUNNING, ScanStatus.SUCCEEDED, ScanStatus.FAILED,
                                   ScanStatus.CANCELLED}),
    ScanStatus.SUCCEEDED: frozenset(),
    ScanStatus.FAILED: frozenset(),
    ScanStatus.CANCELLED: frozenset(),
}


class UploadStatus(StrEnum):
    PENDING = "pending"
    PERMITTED = "permitted"
    UPLOADED = "uploaded"
    DENIED = "denied"
    UPLOAD_FAILED = "upload_failed"


UPLOAD_IN_FLIGHT: frozenset[UploadStatus] = frozenset({UploadStatus.PENDING, UploadStatus.PERMITTED})
UPLOAD_FINAL: frozenset[UploadStatus] = frozenset({UploadStatus.UPLOADED, UploadStatus.DENIED,
                                                   UploadStatus.UPLOAD_FAILED})


class UploadTier(StrEnum):
    BASIC = "basic"
    VERIFIED = "verified"


class Severity(StrEnum):
    """From the most to the least severe; ``list(Severity)`` is that order."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        """0 for critical ... 4 for info."""
        return _RANK[self]


SEVERITIES: tuple[Severity, ...] = tuple(Severity)
_RANK = {s: i for i, s in enumerate(SEVERITIES)}
