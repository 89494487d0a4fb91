"""GET /schemas/manifest.json: the manifest format as a JSON Schema, for editors and CI checks.

The bytes served are the package's schema file, the one ``tasks.manifest`` validates with.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from tasks.manifest import SCHEMA_RESOURCE

bp = Blueprint("schemas", __name__)
_MANIFEST_SCHEMA = SCHEMA_RESOURCE.read_bytes()


@bp.get("/schemas/manifest.json")
def manifest_schema() -> Response:
    """The scan manifest's JSON Schema.
    ---
    get:
      summary: The JSON Schema (draft 2020-12) of scan manifests
      description: The schema the service validates manifests with (docs/manifests.md). Point an editor
        at it to check manifests as they are written. No API key needed.
      tags: [service]
      responses:
        200:
          description: The schema.
          content:
            application/schema+json:
              schema: {type: object}
        304:
          description: Not modified since the `If-None-Match` ETag.
    """
    response = Response(_MANIFEST_SCHEMA, mimetype="application/schema+json")
    response.headers["Cache-Control"] = "public, max-age=3600"
    response.add_etag()
    response.make_conditional(request)  # 304 to a client that has it
    return response
