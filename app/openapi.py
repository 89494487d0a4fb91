"""The OpenAPI 3 document, generated from the marshmallow schemas and the view functions' docstrings.

Convention (how to document a new endpoint): write its operations as YAML after a ``---`` line in the
view function's docstring, keyed by HTTP method, referring to marshmallow schemas by class name::

    @bp.post("/<test_id>/thing")
    def make_thing(test_id: str):
        \"\"\"Make a thing.
        ---
        post:
          summary: Make a thing
          tags: [scans]
          requestBody:
            content:
              application/json:
                schema: ThingRequestSchema
          responses:
            202:
              content:
                application/json:
                  schema: ThingSchema
            409: Conflict
        \"\"\"

A response given as a bare word names a shared error response (``ERROR_RESPONSES``), all of which
carry the error envelope. Every operation also gets 500 and 503; one with a path parameter gets 404,
one with a body gets 400, 413, 415 and 422, and one with query parameters gets 422. Path parameters
are filled in from the route. Nothing else to register: the document walks the app's URL map, and a
schema named in a docstring (any class in a module of app/schemas) becomes a component under its
name without ``Schema`` (``ThingSchema`` -> ``#/components/schemas/Thing``), with the schemas it nests.
"""

from __future__ import annotations

import copy
import importlib
import json
import pkgutil
import re
from typing import Any

import yaml
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.yaml_utils import load_yaml_from_docstring
from flask import Flask
from marshmallow import class_registry

from app import schemas
from app.schemas.responses import ErrorSchema

TITLE = "Certus Assurance"
VERSION = "1.0.0"

ERROR_RESPONSES: dict[str, tuple[int, str, str, str]] = {
    # name: (status, description, example code, example message)
    "BadRequest": (400, "The body is not a JSON object.", "invalid_json", "the body must be a JSON object"),
    "Unauthorized": (401, "A missing or invalid API key.", "unauthorized", "an API key is required"),
    "NotFound": (404, "No such scan (or one the caller may not see).", "scan_not_found", "no such scan"),
    "Forbidden": (403, "The key's role may not do this (or an artifact path runs through a symbolic link).",
                  "forbidden", "this key's role may not do that"),
    "Conflict": (409, "The scan is in the wrong state for this.", "scan_finished",
                 "the scan already ended SUCCEEDED"),
    "PayloadTooLarge": (413, "The body is over the size limit.", "payload_too_large", "body over 1 MiB"),
    "UnsupportedMediaType": (415, "Not a JSON body.", "unsupported_media_type",
                             "send a JSON body with Content-Type: application/json"),
    "ValidationFailed": (422, "`fields` names every bad field.", "validation_error",
                         "the request has invalid fields"),
    "TooManyRequests": (429, "Rate limited; retry after `Retry-After`.", "rate_limited", "slow down"),
    "InternalError": (500, "A bug; the log has the details under `request_id`.", "internal_error",
                      "an unexpected error occurred"),
    "ServiceUnavailable": (503, "Redis, the queue or the database is unreachable; retry after `Retry-After`.",
                           "redis_unavailable", "the state store is unreachable; try again"),
}
STATUS_TO_RESPONSE = {status: name for name, (status, *_rest) in ERROR_RESPONSES.items()}

DESCRIPTION = """\
Submit security scans of git repositories, watch them live, fetch their bundles, request publication.

Every 4xx/5xx answer is the error envelope `{"error": {"code", "message", "fields"?, "request_id"}}`.

**Live log (WebSocket).** `WS /v1/security-scans/{test_id}/stream[?after=ID]` replays every stored event
after `ID`, tails new ones, sends `scan_complete` and closes with 1000; an unknown id closes with 4404.
Each text frame is an `Event`. `GET /v1/security-scans/{test_id}/events` returns the same events
for clients without WebSockets.
"""

_FLASK_PARAM = re.compile(r"<(?:[a-z_]+:)?([a-zA-Z_][a-zA-Z0-9_]*)>")
_PATH_PARAM_DOC: dict[str, dict[str, Any]] = {
    "test_id": {"description": "scan id", "schema": {"type": "string", "pattern": "^test_[0-9a-f]{12}$"},
                "example": "test_3f9c2a1b7d4e"},
    "key_id": {"description": "API key id", "schema": {"type": "string", "pattern": "^[0-9a-f]{12}$"},
               "example": "58a376a11372"},
    "finding_id": {"description": "finding id", "schema": {"type": "integer", "minimum": 1}, "example": 4182},
}


def _error_response(name: str) -> dict[str, Any]:
    status, description, code, message = ERROR_RESPONSES[name]
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"},
                                         "example": {"error": {"code": code, "message": message,
                                                               "request_id": "9f2c4e1a0b7d3c55"}}}},
    }
    if status in (429, 503):
        response["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
    return response


def _complete(operation: dict[str, Any], path_params: list[str], *, keyed: bool = False) -> dict[str, Any]:
    op = copy.deepcopy(operation)
    responses: dict[Any, Any] = {str(k): v for k, v in (op.get("responses") or {}).items()}
    implied = [500, 503]
    if keyed:  # every /v1 endpoint needs an API key, is limited per key and checks the key's role
        op.setdefault("security", [{"bearerAuth": []}])
        implied += [401, 403, 429]
    if path_params:
        implied.append(404)
    if "requestBody" in op:
        implied += [400, 413, 415, 422]
    if any(p.get("in") == "query" for p in op.get("parameters", []) if isinstance(p, dict)):
        implied.append(422)
    for status in implied:
        responses.setdefault(str(status), STATUS_TO_RESPONSE[status])
    for status, value in list(responses.items()):
        if isinstance(value, str):
            if value not in ERROR_RESPONSES:
                raise ValueError(f"unknown shared response {value!r}; use one of {sorted(ERROR_RESPONSES)}")
            responses[status] = {"$ref": f"#/components/responses/{value}"}
    op["responses"] = responses
    params = [p for p in op.get("parameters", []) if not (isinstance(p, dict) and p.get("in") == "path")]
    op["parameters"] = [{"in": "path", "name": n, "required": True,
                         **_PATH_PARAM_DOC.get(n, {"schema": {"type": "string"}})} for n in path_params] + params
    if not op["parameters"]:
        del op["parameters"]
    return op


def _load_schemas() -> None:
    """Import every module of app/schemas, so a docstring can name any of their classes (apispec
    finds a schema by class name in marshmallow's registry of the classes defined so far)."""
    for module in pkgutil.iter_modules(schemas.__path__):
        importlib.import_module(f"{schemas.__name__}.{module.name}")


def _register_query_schemas(spec: APISpec, operation: dict[str, Any]) -> None:
    """A query schema is spread into parameters; it is also listed as a component, like a body's."""
    for param in operation.get("parameters", []):
        name = param.get("schema") if isinstance(param, dict) and param.get("in") == "query" else None
        if isinstance(name, str) and name.removesuffix("Schema") not in spec.components.schemas:
            spec.components.schema(name.removesuffix("Schema"), schema=class_registry.get_class(name))


def build_spec(app: Flask, server_url: str | None = None) -> dict[str, Any]:
    _load_schemas()
    spec = APISpec(title=TITLE, version=VERSION, openapi_version="3.0.3", plugins=[MarshmallowPlugin()],
                   info={"description": DESCRIPTION},
                   servers=[{"url": server_url}] if server_url else [])
    spec.components.schema("Error", schema=ErrorSchema)  # the error envelope of every shared response
    for name in ERROR_RESPONSES:
        spec.components.response(name, _error_response(name))
    spec.components.security_scheme("bearerAuth", {
        "type": "http", "scheme": "bearer",
        "description": "An API key (`POST /v1/keys`, `certus-assurance keys create` or "
                       "`python -m app.keys create`). WebSocket clients that cannot send "
                       "headers use `?token=` from `POST /v1/stream-tokens`."})
    by_path: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        view = app.view_functions.get(rule.endpoint)
        doc = load_yaml_from_docstring(view.__doc__ or "") if view else None
        if not doc:
            continue
        path = _FLASK_PARAM.sub(r"{\1}", rule.rule)
        path_params = _FLASK_PARAM.findall(rule.rule)
        methods = {m.lower() for m in (rule.methods or set())} - {"head", "options"}
        ops = by_path.setdefault(path, {})
        for method, operation in doc.items():
            if method in methods:
                keyed = path.startswith("/v1/") or path in ("/stats", "/metrics")
                ops[method] = _complete(operation, path_params, keyed=keyed)
                _register_query_schemas(spec, ops[method])
    for path, ops in by_path.items():
        spec.path(path=path, operations=ops)
    return spec.to_dict()


def to_yaml(document: dict[str, Any]) -> str:
    # Through JSON first: the document holds named values (StrEnum members) YAML cannot represent.
    return yaml.safe_dump(json.loads(json.dumps(document)), sort_keys=False)
