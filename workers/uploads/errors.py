"""Typed upload errors: transient ones are retried with backoff, permanent ones end the upload."""

from __future__ import annotations

from tasks.errors import CodedError
from tasks.upload_tasks import TransientUploadError


class PermanentUploadError(CodedError):
    """The upload cannot succeed (the bundle changed, a destination refused it for good)."""


__all__ = ["PermanentUploadError", "TransientUploadError"]
