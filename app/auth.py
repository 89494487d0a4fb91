"""Authentication, roles and per-key limits for every ``/v1`` endpoint, in one before-request hook.

Endpoints need no decorator: the hook decides the permission from the method and path, so a new
endpoint is covered the moment it is registered. The hook leaves the caller's ``Principal`` in
``g``; a route hands it to the service (``caller()``), and the service checks the tenant with it
(``app.services.access``): a scan of a workspace the key does not hold is reported as not found.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, current_app, g, has_request_context, request

from app.limits import RateLimiter, too_deep
from app.services.errors import Forbidden, RateLimited, TooLarge, Unauthenticated
from tasks.api_keys import KeyCheck, KeyStore, Principal
from tasks.ids import is_test_id

OPEN_PATHS = frozenset({"/health", "/ready", "/openapi.json", "/schemas/manifest.json"})
SERVICE_PATHS = frozenset({"/stats", "/metrics"})
# Routes outside /v1 that answer without a key: the web page and its files, the API description.
# Any other registered route needs a key, wherever it lives (an unknown path still answers 404).
OPEN_ENDPOINTS = frozenset({"static", "web.static", "web.index", "docs.openapi_yaml"})


def required_permission(method: str, path: str) -> str:
    """admin for API keys, read for GET (and WebSocket upgrades), triage for changes to findings,
    publish for upload requests, submit for other writes."""
    if path == "/v1/keys" or path.startswith("/v1/keys/"):
        return "admin"
    if (path == "/v1/findings" or path.startswith("/v1/findings/")) and method not in ("GET", "HEAD", "OPTIONS"):
        return "triage"
    if path == "/v1/stream-tokens" or method in ("GET", "HEAD", "OPTIONS"):
        return "read"
    if path.rstrip("/").endswith("/upload-request"):
        return "publish"
    return "submit"


def current_principal() -> Principal | None:
    """The request's caller, as the hook authenticated it; None outside a request or before the hook."""
    principal: Principal | None = g.get("principal") if has_request_context() else None
    return principal


def caller() -> Principal:
    """The request's caller, to hand to a service; refused (401) when there is none, so nothing is
    ever done for nobody."""
    principal = current_principal()
    if principal is None:  # the guard has already refused; never act without a key
        raise _unauthorized("send an API key")
    return principal


def _unauthorized(message: str) -> Unauthenticated:
    return Unauthenticated("unauthorized", message)


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _is_stream(path: str) -> bool:
    """Whether the request opens a scan's stream: a WebSocket upgrade of exactly
    ``/v1/security-scans/{test_id}/stream``, the one route a stream token is good for."""
    prefix, _, test_id = path.removesuffix("/stream").rpartition("/")
    return (request.method == "GET" and path.endswith("/stream") and prefix == "/v1/security-scans"
            and is_test_id(test_id) and request.headers.get("Upgrade", "").lower() == "websocket")


def rate_limited(wait: int) -> RateLimited:
    return RateLimited("rate_limited", f"too many requests for this key; retry in {wait} s", retry_after=wait)


def authenticate(keys: KeyStore, limiter: RateLimiter) -> Principal:
    """The caller's principal, with one token of its key's rate limit taken (429 when none is left)."""
    plain = _bearer()
    if plain is not None:
        principal, wait = limiter.authenticate(plain)
        if principal is None:
            raise _unauthorized("the API key is not valid")
    else:
        token = request.args.get("token")
        if token is None or not _is_stream(request.path):
            raise _unauthorized("send an API key as 'Authorization: Bearer <key>'")
        principal = keys.redeem_stream_token(token)
        if principal is None:
            raise _unauthorized("the stream token is not valid, already used or expired")
        wait = limiter.hit(principal)
    g.principal = principal
    if wait:
        raise rate_limited(wait)
    return principal


# -- deferred authentication ------------------------------------------------------------------
# A submit is one write. For a key this process has already seen, the hook does not ask Redis
# about the key: it takes the principal it remembers and leaves a KeyCheck, and the write confirms
# the key and takes its token in the same atomic step (see ScanStore.create). Whatever answer the
# request ends with other than that write, the key is confirmed the ordinary way first (the hook
# and `key_confirmed`), so a revoked or exhausted key gets the same 401 or 429 as ever. The route
# hands the service a `DeferredKey` (the service's `KeyConfirmation`): the check for its write,
# and what to call when the write ran it or refused the remembered record.

DEFERRED_PATHS = frozenset({"/v1/security-scans"})


def deferred_key() -> KeyCheck | None:
    """The check a write must confirm for this request's key, if its authentication was deferred."""
    return g.get("deferred_key") if has_request_context() else None


def settle_deferred() -> None:
    """The write ran the check: the key was confirmed (or refused) there."""
    if has_request_context():
        g.pop("deferred_key", None)


def confirm_deferred() -> None:
    """Authenticate now, as the hook would have (401, 429 or 403 as the stored key answers)."""
    if g.pop("deferred_key", None) is None:
        return
    certus = current_app.extensions["certus"]
    _authorize(authenticate(certus.keys, certus.limiter))


class DeferredKey:
    """This request's key as a write sees it (``app.services.scans.KeyConfirmation``)."""

    @property
    def check(self) -> KeyCheck | None:
        return deferred_key()

    def settle(self) -> None:
        settle_deferred()

    def confirm(self) -> Principal:
        confirm_deferred()
        return caller()


@contextmanager
def key_confirmed() -> Iterator[DeferredKey]:
    """Leave the block only with the request's key confirmed, by the write inside it (given the
    ``DeferredKey`` this yields) or else here: an error raised in the block is answered only to a
    key that is still valid and has a token (otherwise with the 401 or 429 that key gets)."""
    try:
        yield DeferredKey()
    except Exception:
        confirm_deferred()
        raise
    confirm_deferred()


def _defer(limiter: RateLimiter) -> Principal | None:
    if request.method != "POST" or request.path not in DEFERRED_PATHS:
        return None
    plain = _bearer()
    recalled = limiter.recall(plain) if plain is not None else None
    if recalled is None:
        return None
    g.principal, g.deferred_key = recalled
    return recalled[0]


def _authorize(principal: Principal) -> None:
    permission = required_permission(request.method, request.path)
    if not principal.can(permission):
        raise Forbidden("forbidden", f"the key's role ({principal.role}) may not {permission}")
    _check_json_body()


def install(app: Flask) -> None:
    certus = app.extensions["certus"]
    settings = certus.settings
    keys: KeyStore = certus.keys
    limiter: RateLimiter = certus.limiter

    @app.before_request
    def _guard() -> None:
        path = request.path
        if path in OPEN_PATHS:
            return
        if path in SERVICE_PATHS:
            if settings.open_service_endpoints:
                return
            if not authenticate(keys, limiter).can("admin"):
                raise Forbidden("forbidden", "this endpoint needs an admin key")
            return
        if not path.startswith("/v1/") and path != "/v1" and (
                request.url_rule is None or request.endpoint in OPEN_ENDPOINTS):
            return  # unknown paths answer 404 on their own
        deferred = _defer(limiter)
        if deferred is None:
            _authorize(authenticate(keys, limiter))
            return
        try:
            _authorize(deferred)
        except Exception:
            confirm_deferred()  # a refusal goes only to a key that is still valid and has a token
            raise


def _check_json_body() -> None:
    if not request.is_json:
        return
    data: Any = request.get_data(cache=True)  # over MAX_CONTENT_LENGTH this raises 413
    limit = current_app.extensions["certus"].settings.max_json_depth
    if too_deep(data, limit):
        raise TooLarge("json_too_deep", f"the JSON body nests deeper than {limit} levels")
