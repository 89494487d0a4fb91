"""Service endpoints: liveness, readiness and counts."""

from __future__ import annotations

import importlib.util

from flask import Blueprint, Response, current_app, jsonify

from app.errors import error_response

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> Response:
    """Liveness.
    ---
    get:
      summary: The process is up
      tags: [service]
      responses:
        200:
          description: Up.
          content:
            application/json:
              schema: HealthSchema
    """
    # The API never imports the engine; whether it is installed is enough to report.
    available = importlib.util.find_spec("workers") is not None
    return jsonify({"status": "ok", "scanning_mode": "celery", "security_module_available": available})


@bp.get("/ready")
def ready() -> Response:
    """Readiness.
    ---
    get:
      summary: Redis is reachable
      tags: [service]
      responses:
        200:
          description: Ready.
          content:
            application/json:
              schema: ReadySchema
    """
    certus = current_app.extensions["certus"]
    try:
        certus.redis.ping()
    except Exception:  # noqa: BLE001 - any failure means not ready; never leak a trace
        return error_response(503, "redis_unavailable", "Redis is not reachable",
                              headers={"Retry-After": "5"})
    return jsonify({"status": "ready"})


@bp.get("/stats")
def stats() -> Response:
    """Counts.
    ---
    get:
      summary: Scan and upload counts by status, active streams, queue depth, workers online
      tags: [service]
      responses:
        200:
          description: Counts from Redis.
          content:
            application/json:
              schema: StatsSchema
    """
    return jsonify(current_app.extensions["certus"].stats.collect())
