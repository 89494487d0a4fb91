from __future__ import annotations

from tasks.errors import CodedError


class SourceError(CodedError):
    """The source could not be fetched; ``code`` is stable and shown to the user."""
