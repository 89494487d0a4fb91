"""Typed upload errors: transient ones are retried with backoff, permanent ones end the upload."""

from __future__ import annotations

from tasks.upload_tasks import TransientUploadError


class PermanentUploadError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


__all__ = ["PermanentUploadError", "TransientUploadError"]
