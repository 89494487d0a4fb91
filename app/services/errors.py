"""The errors the service layer raises: each a ``CodedError`` (a stable ``ErrorCode``) of one kind.

The kind says what went wrong in the service's own terms (the thing is not there, the caller may
not, try again later); the HTTP edge maps each kind to a status and headers in one place
(``app.errors``), so a service knows nothing of HTTP and can be called from anywhere.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

from tasks.errors import CodedError, ErrorCode


class Kind(StrEnum):
    INVALID = "invalid"  # the request names something the service refuses (fields say which)
    MALFORMED = "malformed"  # the request cannot be read at all (a path that is no path)
    NOT_FOUND = "not_found"  # no such thing, or one the caller may not see: the same answer
    CONFLICT = "conflict"  # the thing is in the wrong state for this
    FORBIDDEN = "forbidden"  # the caller may not do this
    UNAUTHENTICATED = "unauthenticated"  # no caller at all
    TOO_LARGE = "too_large"  # over a size limit
    RATE_LIMITED = "rate_limited"  # too many; retry after ``retry_after`` seconds
    UNAVAILABLE = "unavailable"  # a part the service needs is down; nothing was kept


class ServiceError(CodedError):
    """A refusal by the service: a code, a message fit for the caller, and optionally the fields
    at fault and how many seconds to wait before trying again."""

    kind: ClassVar[Kind]

    def __init__(self, code: ErrorCode | str, message: str, *, fields: dict[str, Any] | None = None,
                 retry_after: int | None = None) -> None:
        super().__init__(code, message)
        self.fields = fields
        self.retry_after = retry_after


class Invalid(ServiceError):
    kind = Kind.INVALID


class Malformed(ServiceError):
    kind = Kind.MALFORMED


class NotFound(ServiceError):
    kind = Kind.NOT_FOUND


class Conflict(ServiceError):
    kind = Kind.CONFLICT


class Forbidden(ServiceError):
    kind = Kind.FORBIDDEN


class Unauthenticated(ServiceError):
    kind = Kind.UNAUTHENTICATED


class TooLarge(ServiceError):
    kind = Kind.TOO_LARGE


class RateLimited(ServiceError):
    kind = Kind.RATE_LIMITED


class Unavailable(ServiceError):
    kind = Kind.UNAVAILABLE
