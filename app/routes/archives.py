"""`POST /v1/security-scans/upload-archive`: store an archive for a later `archive` scan."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from app.errors import APIError
from app.services.archives import store_upload

bp = Blueprint("archives", __name__, url_prefix="/v1/security-scans")


@bp.post("/upload-archive")
def upload_archive() -> tuple[Response, int]:
    """Upload an archive to scan.
    ---
    post:
      summary: Store an archive (.tar, .tar.gz, .tgz, .tar.bz2, .zip) for an `archive` scan
      tags: [scans]
      requestBody:
        required: true
        content:
          multipart/form-data:
            schema:
              type: object
              required: [file]
              properties:
                file: {type: string, format: binary}
      responses:
        201:
          description: Stored; pass `archive_path` on submit.
          content:
            application/json:
              schema: ArchiveUploadSchema
    """
    settings = current_app.extensions["certus"].settings
    # This endpoint alone takes large bodies; every other one keeps the app's 1 MiB cap.
    request.max_content_length = settings.upload_max_bytes + 64 * 1024
    if not request.mimetype == "multipart/form-data":
        raise APIError(415, "unsupported_media_type", "send the archive as multipart/form-data in field `file`")
    if request.content_length is not None and request.content_length > settings.upload_max_bytes + 64 * 1024:
        raise APIError(413, "payload_too_large", f"the archive is larger than {settings.upload_max_bytes} bytes")
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise APIError(422, "validation_error", "the request has invalid fields",
                       fields={"file": ["send the archive in multipart field `file`, with a filename"]})
    return jsonify(store_upload(settings, upload)), 201
