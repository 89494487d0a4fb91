from __future__ import annotations


class SourceError(Exception):
    """The source could not be fetched; ``code`` is stable and shown to the user."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
