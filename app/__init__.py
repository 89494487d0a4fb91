"""The HTTP and WebSocket edge. ``create_app()`` is the factory; nothing connects until a request."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery
from flask import Flask, Response, g, request
from flask_sock import Sock

from app import auth
from app.errors import register_error_handlers
from app.limits import RateLimiter, StreamSlots
from app.routes import api_keys, archives, artifacts, docs, health, ops, scans, stream, tokens, uploads, web
from app.services.scans import ScanService
from app.services.stats import Presence, Stats
from app.services.uploads import UploadService
from tasks import names
from tasks.api_keys import KeyStore
from tasks.celery_app import create_celery
from tasks.events import EventLog
from tasks.logconfig import configure_logging, request_id_var
from tasks.redis_client import connect
from tasks.settings import Settings
from tasks.store import ScanStore
from tasks.uploads import UploadStore


@dataclass
class Certus:
    settings: Settings
    redis: redis.Redis
    celery: Celery
    scans: ScanService
    stats: Stats
    presence: Presence
    uploads: UploadService
    keys: KeyStore
    stream_slots: StreamSlots
    limiter: RateLimiter


def create_app(settings: Settings | None = None, *, celery: Celery | None = None) -> Flask:
    settings = settings or Settings.from_env()
    configure_logging(settings)
    client = connect(settings.redis_url, settings=settings)
    broker = client if settings.broker_is_store else connect(settings.broker, settings=settings)
    store = ScanStore(client, retention_seconds=settings.retention_seconds)
    events = EventLog(client, maxlen=settings.stream_maxlen, block_ms=settings.ws_block_ms,
                      retention_seconds=settings.retention_seconds)
    celery = celery or create_celery(settings)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    # An idle client is pinged; one that stops answering is disconnected.
    app.config["SOCK_SERVER_OPTIONS"] = {"ping_interval": settings.ws_ping_interval}
    app.json.sort_keys = False  # type: ignore[attr-defined]
    scan_service = ScanService(settings, store, events, celery)
    app.extensions["certus"] = Certus(
        settings=settings, redis=client, celery=celery, scans=scan_service,
        stats=Stats(client, store, broker, names.all_queues(settings.scan_queue_per_profile)),
        presence=Presence(client), uploads=UploadService(UploadStore(store, events), celery, scan_service),
        keys=KeyStore(client), stream_slots=StreamSlots(client, settings.max_ws_per_key),
        limiter=RateLimiter(client, settings.rate_limit_per_minute, settings.rate_limit_burst))

    @app.before_request
    def _request_id() -> None:
        incoming = request.headers.get("X-Request-ID", "")
        ok = 0 < len(incoming) <= 64 and incoming.replace("-", "").isalnum()
        g.request_id = incoming if ok else secrets.token_hex(8)
        request_id_var.set(g.request_id)

    @app.after_request
    def _echo_request_id(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "")
        return response

    register_error_handlers(app)
    auth.install(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(scans.bp)
    app.register_blueprint(artifacts.bp)
    app.register_blueprint(archives.bp)
    app.register_blueprint(docs.bp)
    app.register_blueprint(web.bp)
    app.register_blueprint(ops.bp)  # ops: /metrics, X-Certus-Replica, request log lines
    app.register_blueprint(uploads.bp)
    app.register_blueprint(tokens.bp)
    app.register_blueprint(api_keys.bp)
    sock = Sock(app)
    stream.register(sock)
    logging.getLogger(__name__).debug("app created")
    return app


def __getattr__(name: str) -> Any:  # pragma: no cover - helpful error for a common mistake
    raise AttributeError(f"module 'app' has no attribute {name!r}; use app.create_app()")
