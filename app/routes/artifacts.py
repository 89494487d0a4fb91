"""`GET /v1/security-scans/{test_id}/artifacts[/{path}]`: list and download bundle files."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from flask import Blueprint, Response, current_app, jsonify, send_file
from flask.blueprints import BlueprintSetupState
from werkzeug.routing import PathConverter

from app.auth import caller
from app.services import artifacts

bp = Blueprint("artifacts", __name__, url_prefix="/v1/security-scans")


class AnyPathConverter(PathConverter):
    """Like ``path`` but also matches a leading slash, so ``//etc/passwd`` reaches the confinement
    check (and gets its stable code) instead of a routing 404 or a slash-merging redirect."""

    regex = ".+?"
    part_isolating = False  # spans slashes (werkzeug infers this only from a "/" in the regex)


@bp.record_once
def _converter(state: BlueprintSetupState) -> None:
    state.app.url_map.converters["anypath"] = AnyPathConverter


def _root(test_id: str) -> Path:
    certus = current_app.extensions["certus"]
    scan = certus.scans.get(caller(), test_id)  # scan_not_found for an unknown, malformed or hidden id
    return artifacts.bundle_root(certus.settings.artifact_root, scan)


@bp.get("/<test_id>/artifacts")
def list_artifacts(test_id: str) -> Response:
    """List a scan's bundle files.
    ---
    get:
      summary: The files of a scan's artifact bundle, with size and sha256
      tags: [artifacts]
      responses:
        200:
          description: Every file of the bundle.
          content:
            application/json:
              schema: ArtifactListSchema
    """
    files = artifacts.list_files(_root(test_id))
    return jsonify({"test_id": test_id, "files": files, "total_size": sum(f["size"] for f in files)})


@bp.get("/<test_id>/artifacts/<anypath:relative>", merge_slashes=False)
def download_artifact(test_id: str, relative: str) -> Response:
    """Download one bundle file.
    ---
    get:
      summary: One file of a scan's artifact bundle
      description: The path is confined to the bundle; traversal, absolute and encoded paths get 400.
      tags: [artifacts]
      responses:
        200:
          description: The file.
          content:
            application/octet-stream:
              schema: {type: string, format: binary}
            application/json:
              schema: {}
        400: BadRequest
        403: Forbidden
    """
    fh = artifacts.open_file(_root(test_id), relative)
    name = relative.rsplit("/", 1)[-1]
    mimetype = "application/json" if name.endswith(".json") else mimetypes.guess_type(name)[0]
    response = send_file(fh, mimetype=mimetype or "application/octet-stream", as_attachment=True,
                         download_name=name, conditional=False)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
