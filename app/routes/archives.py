"""`POST /v1/security-scans/upload-archive`: store an archive for a later `archive` scan of the
workspace the client names (or of the key's own workspaces)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import UnsupportedMediaType

from app.auth import caller
from app.schemas.archives import ArchiveUploadFormSchema
from app.services.archives import store_upload
from app.services.errors import Invalid, TooLarge
from tasks.textsafe import visible

_form_schema = ArchiveUploadFormSchema()

bp = Blueprint("archives", __name__, url_prefix="/v1/security-scans")


@bp.post("/upload-archive")
def upload_archive() -> tuple[Response, int]:
    """Upload an archive to scan.
    ---
    post:
      summary: Store an archive (.tar, .tar.gz, .tgz, .tar.bz2, .zip) for an `archive` scan
      description: The archive belongs to the workspace named in `workspace_id` (one the key holds;
        404 `workspace_not_found` otherwise) or, without it, to the key's own workspaces. Only
        scans of those workspaces may use it; for any other it is an unknown upload.
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
                workspace_id: {type: string, pattern: "^[a-z0-9][a-z0-9-]{0,62}$"}
      responses:
        201:
          description: Stored; pass `archive_path` on submit.
          content:
            application/json:
              schema: ArchiveUploadSchema
    """
    settings = current_app.extensions["certus"].settings
    # This endpoint alone takes large bodies; every other one keeps the app's 1 MiB cap.
    request.max_content_length = settings.archive_file_max_bytes + 64 * 1024
    if not request.mimetype == "multipart/form-data":
        raise UnsupportedMediaType("send the archive as multipart/form-data in field `file`")
    if request.content_length is not None and request.content_length > settings.archive_file_max_bytes + 64 * 1024:
        raise TooLarge("payload_too_large", f"the archive is larger than {settings.archive_file_max_bytes} bytes")
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise Invalid("validation_error", "the request has invalid fields",
                      fields={"file": ["send the archive in multipart field `file`, with a filename"]})
    if visible(upload.filename) != upload.filename:
        raise Invalid("validation_error", "the request has invalid fields", fields={
            "file": ["the file name must not contain control, format or bidirectional characters"]})
    form = _form_schema.load(request.form.to_dict(flat=True))
    stored = store_upload(settings, caller(), upload.filename, upload.stream, form.get("workspace_id"))
    return jsonify(stored), 201
