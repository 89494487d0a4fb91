"""One JSON error envelope for every 4xx and 5xx, each with a stable ``code``.

``{"error": {"code": "validation_error", "message": "...", "fields": {...}, "request_id": "..."}}``

The one place a refusal becomes HTTP: ``STATUS`` maps each kind of ``ServiceError``
(``app.services.errors``) to its status, and ``_headers`` adds what a client needs to act on it.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Flask, Response, g, jsonify
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from app.services.errors import Kind, ServiceError
from tasks.errors import CodedError, ErrorCode

log = logging.getLogger(__name__)

STATUS: dict[Kind, int] = {
    Kind.MALFORMED: 400,
    Kind.UNAUTHENTICATED: 401,
    Kind.FORBIDDEN: 403,
    Kind.NOT_FOUND: 404,
    Kind.CONFLICT: 409,
    Kind.TOO_LARGE: 413,
    Kind.INVALID: 422,
    Kind.RATE_LIMITED: 429,
    Kind.UNAVAILABLE: 503,
}


def _headers(exc: ServiceError) -> dict[str, str]:
    headers = {}
    if exc.kind is Kind.UNAUTHENTICATED:
        headers["WWW-Authenticate"] = 'Bearer realm="certus"'
    if exc.retry_after is not None:
        headers["Retry-After"] = str(int(exc.retry_after))
    return headers


class APIError(CodedError):
    """An answer with an explicit HTTP status, for code that is HTTP by nature; everything else
    raises a ``ServiceError`` and lets ``STATUS`` pick the status."""

    def __init__(self, status: int, code: ErrorCode | str, message: str, *, fields: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(code, message)
        self.status = status
        self.fields = fields
        self.headers = headers or {}


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    request_id = g.get("request_id") if g else None
    if request_id:
        body["request_id"] = request_id
    return {"error": body}


def error_response(status: int, code: str, message: str, fields: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    response = jsonify(error_body(code, message, fields))
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _http_code(exc: HTTPException) -> str:
    return (exc.name or "error").lower().replace(" ", "_").replace("'", "")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ServiceError)
    def _service_error(exc: ServiceError) -> Response:
        return error_response(STATUS[exc.kind], exc.code, exc.message, exc.fields, _headers(exc))

    @app.errorhandler(APIError)
    def _api_error(exc: APIError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.fields, exc.headers)

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError) -> Response:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        return error_response(422, "validation_error", "the request has invalid fields", messages)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        code = {413: "payload_too_large", 415: "unsupported_media_type"}.get(exc.code or 0, _http_code(exc))
        return error_response(exc.code or 500, code, exc.description or exc.name)

    @app.errorhandler(redis.RedisError)
    def _redis_down(exc: redis.RedisError) -> Response:
        log.warning("redis unavailable: %s", exc.__class__.__name__)
        return error_response(503, "redis_unavailable", "the state store is unreachable; try again",
                              headers={"Retry-After": "5"})

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "an unexpected error occurred")
