"""GET /openapi.json (and .yaml): the API's own description, built once per process."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from app.openapi import build_spec, to_yaml

bp = Blueprint("docs", __name__)


def _document() -> dict[str, Any]:
    cached = current_app.extensions.get("openapi")
    if cached is None:
        cached = current_app.extensions["openapi"] = build_spec(current_app)
    return cached  # type: ignore[no-any-return,unused-ignore]


@bp.get("/openapi.json")
def openapi_json() -> Response:
    """This document.
    ---
    get:
      summary: The OpenAPI 3.0 document of this API
      tags: [service]
      responses:
        200:
          description: OpenAPI 3.0 as JSON.
          content:
            application/json:
              schema: {type: object}
    """
    return jsonify(_document())


@bp.get("/openapi.yaml")
def openapi_yaml() -> Response:
    """This document as YAML.
    ---
    get:
      summary: The OpenAPI 3.0 document of this API, as YAML
      tags: [service]
      responses:
        200:
          description: OpenAPI 3.0 as YAML.
          content:
            application/yaml:
              schema: {type: object}
    """
    return Response(to_yaml(_document()), mimetype="application/yaml")
