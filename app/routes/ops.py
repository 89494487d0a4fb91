"""Operations: ``GET /metrics`` (Prometheus), the replica header and one log line per request."""

from __future__ import annotations

import logging
import os
import socket
import time

from flask import Blueprint, Response, current_app, g, request

from tasks import metrics

bp = Blueprint("ops", __name__)
log = logging.getLogger("certus.access")
# Probes and scrapes arrive every few seconds from the load balancer and Prometheus: not logged.
QUIET_PATHS = frozenset({"/metrics", "/ready", "/health"})


def replica_id() -> str:
    configured: str = current_app.extensions["certus"].settings.replica_id
    return configured or f"{socket.gethostname()}:{os.getpid()}"


@bp.get("/metrics")
def prometheus() -> Response:
    """Prometheus metrics.
    ---
    get:
      summary: Metrics in the Prometheus text format (see docs/operations.md)
      tags: [service]
      responses:
        200:
          description: The metrics of this replica, with the counts held in Redis.
          content:
            text/plain:
              schema: {type: string}
    """
    stats = current_app.extensions["certus"].stats
    body, content_type = metrics.render(metrics.RedisCollector(stats.collect))
    return Response(body, content_type=content_type)


@bp.before_app_request
def _started() -> None:
    g.started = time.monotonic()


@bp.after_app_request
def _replica_and_log(response: Response) -> Response:
    # Which replica answered: lets operators and the load-balancer tests see the routing.
    response.headers["X-Certus-Replica"] = replica_id()
    if request.path not in QUIET_PATHS:
        log.info("%s %s %s", request.method, request.path, response.status_code,
                 extra={"method": request.method, "path": request.path, "status": response.status_code,
                        "duration_ms": round((time.monotonic() - g.get("started", time.monotonic())) * 1000, 1)})
    return response
