"""The web page at ``/``: static HTML, CSS and JavaScript committed under app/static/ (no build step,
no CDN). The page talks to the same public API as every other client."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, send_from_directory

STATIC = Path(__file__).resolve().parent.parent / "static"

bp = Blueprint("web", __name__, static_folder=str(STATIC), static_url_path="/static")

_HEADERS = {
    # Everything the page loads comes from this origin; connect-src also allows our own WebSocket.
    "Content-Security-Policy": "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
                               "style-src 'self'; script-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@bp.get("/")
def index() -> Response:
    """The web page.
    ---
    get:
      summary: The web page (scans, live logs, findings)
      tags: [service]
      responses:
        200:
          description: HTML; its scripts and styles are under /static/.
          content:
            text/html:
              schema: {type: string}
    """
    response = send_from_directory(STATIC, "index.html", max_age=0)
    response.headers.update(_HEADERS)
    return response
