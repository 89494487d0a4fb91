"""The OpenAPI document: generated from the schemas, every HTTP endpoint described, errors enveloped."""

from __future__ import annotations

import json
import re

import pytest

from app import create_app
from app.openapi import _complete, build_spec
from tasks.settings import Settings


@pytest.fixture(scope="module")
def document():
    app = create_app(Settings.from_env())  # connects to nothing until a request
    return app, build_spec(app)


def test_every_http_endpoint_is_documented(document):
    app, doc = document
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("static", "web.static") or rule.rule.endswith("/stream"):
            continue  # static files; the WebSocket is described in info.description
        path = re.sub(r"<(?:[a-z_]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in documented, (path, method)


def test_errors_use_the_envelope_and_requests_use_the_schemas(document):
    _, doc = document
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert {"500", "503"} <= set(op["responses"]), (path, method)
            if "{test_id}" in path:
                assert op["responses"]["404"] == {"$ref": "#/components/responses/NotFound"}
                assert op["parameters"][0]["name"] == "test_id"
    submit = doc["paths"]["/v1/security-scans"]["post"]
    body = submit["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/ScanRequest"}
    assert submit["responses"]["422"] == {"$ref": "#/components/responses/ValidationFailed"}
    envelope = doc["components"]["responses"]["ValidationFailed"]["content"]["application/json"]
    assert envelope["schema"] == {"$ref": "#/components/schemas/Error"}
    assert envelope["example"]["error"]["code"] == "validation_error"
    request = doc["components"]["schemas"]["ScanRequest"]
    assert set(request["required"]) == {"workspace_id", "component_id", "assessment_id"}
    assert request["properties"]["workspace_id"]["pattern"] == "^[a-z0-9][a-z0-9-]{0,62}$"
    listing = doc["paths"]["/v1/security-scans"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"workspace_id", "status", "cursor", "limit"}


def test_unknown_shared_response_is_refused():
    with pytest.raises(ValueError, match="unknown shared response"):
        _complete({"responses": {"418": "Teapot"}}, [])


def test_the_yaml_document_is_the_json_one(document):
    import yaml

    from app.openapi import to_yaml

    _, doc = document
    assert yaml.safe_load(to_yaml(doc)) == json.loads(json.dumps(doc))


def test_every_schema_a_docstring_names_is_a_component(document):
    _, doc = document
    text = json.dumps(doc)
    for ref in re.findall(r'"#/components/schemas/([A-Za-z]+)"', text):
        assert ref in doc["components"]["schemas"], ref
    # query schemas are spread into parameters and listed as components as well
    assert {"ScanListQuery", "EventsQuery", "Error", "ErrorBody"} <= set(doc["components"]["schemas"])
