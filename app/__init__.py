"""The HTTP and WebSocket edge. ``create_app()`` is the factory; nothing connects to Redis until a
request (the findings database's schema is brought up to date when the app is made)."""

from __future__ import annotations

import importlib
import logging
import pkgutil
import secrets
from dataclasses import dataclass
from typing import Any

import redis
from alembic.util import CommandError
from celery import Celery
from flask import Blueprint, Flask, Response, g, request
from sqlalchemy.exc import SQLAlchemyError

from app import auth, routes
from app.errors import register_error_handlers
from app.limits import RateLimiter, StreamSlots
from app.services.api_keys import KeyService
from app.services.findings import FindingsService
from app.services.scans import ScanService
from app.services.stats import Presence, Stats
from app.services.uploads import UploadService
from tasks import db, names, plugins
from tasks.api_keys import KeyStore
from tasks.celery_app import create_celery
from tasks.events import EventLog
from tasks.findings_store import FindingsStore
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
    api_keys: KeyService
    stream_slots: StreamSlots
    limiter: RateLimiter
    findings: FindingsService


def create_app(settings: Settings | None = None, *, celery: Celery | None = None) -> Flask:
    settings = settings or Settings.from_env()
    configure_logging(settings)
    plugins.load(settings.plugins)  # source kinds of plugins, before any request is read
    _upgrade_database(settings)
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
    # One findings store (one connection pool) per API process, for every service that reads it.
    findings = FindingsStore.from_settings(settings)
    scan_service = ScanService(settings, store, events, celery, findings=findings)
    keys = KeyStore(client)
    app.extensions["certus"] = Certus(
        settings=settings, redis=client, celery=celery, scans=scan_service,
        stats=Stats(client, store, broker, names.all_queues(settings.scan_queue_per_profile)),
        presence=Presence(client), uploads=UploadService(UploadStore(store, events), celery, scan_service),
        keys=keys, api_keys=KeyService(keys), stream_slots=StreamSlots(client, settings.max_ws_per_key),
        limiter=RateLimiter(client, settings.rate_limit_per_minute, settings.rate_limit_burst),
        findings=FindingsService(findings))

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
    auth.install(app)  # before any blueprint: every request is authenticated first
    register_routes(app)
    logging.getLogger(__name__).debug("app created")
    return app


def _upgrade_database(settings: Settings) -> None:
    """The findings store's schema at the newest migration (every API and worker process does this
    on start; the upgrade takes a lock, so they may do it at once). A database out of reach does
    not stop the API: the endpoints that need it answer ``database_unavailable`` until it is back
    (and a worker or the next start has upgraded it)."""
    try:
        db.upgrade(settings)
    except (SQLAlchemyError, CommandError, OSError) as exc:
        logging.getLogger(__name__).error("the findings database %s cannot be upgraded now: %s",
                                          db.display_url(settings.database_url), exc.__class__.__name__)


def register_routes(app: Flask) -> None:
    """Register the blueprint ``bp`` of every module in app/routes (in name order): a new route
    module is served, authenticated by the hook and described in /openapi.json with nothing to add
    here. A blueprint registered before this runs is left as it is."""
    for module in sorted(m.name for m in pkgutil.iter_modules(routes.__path__)):
        bp = getattr(importlib.import_module(f"{routes.__name__}.{module}"), "bp", None)
        if isinstance(bp, Blueprint) and bp.name not in app.blueprints:
            app.register_blueprint(bp)


def __getattr__(name: str) -> Any:  # pragma: no cover - helpful error for a common mistake
    raise AttributeError(f"module 'app' has no attribute {name!r}; use app.create_app()")
