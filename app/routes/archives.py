"""`POST /v1/security-scans/upload-archive`: store an archive for a later `archive` scan of the
workspace the client names (or of the key's own workspaces)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from app.auth import current_principal
from app.errors import APIError
from app.schemas.archives import ArchiveUploadFormSchema
from app.services.archives import store_upload
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
        raise APIError(415, "unsupported_media_type", "send the archive as multipart/form-data in field `file`")
    if request.content_length is not None and request.content_length > settings.archive_file_max_bytes + 64 * 1024:
        raise APIError(413, "payload_too_large", f"the archive is larger than {settings.archive_file_max_bytes} bytes")
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise APIError(422, "validation_error", "the request has invalid fields",
                       fields={"file": ["send the archive in multipart field `file`, with a filename"]})
    if visible(upload.filename) != upload.filename:
        raise APIError(422, "validation_error", "the request has invalid fields", fields={
            "file": ["the file name must not contain control, format or bidirectional characters"]})
    return jsonify(store_upload(settings, upload, _workspaces())), 201


def _workspaces() -> list[str]:
    """The workspaces the archive belongs to: the one named in the form, which the key must hold,
    or the key's own."""
    form = _form_schema.load(request.form.to_dict(flat=True))
    principal = current_principal()
    if principal is None:  # the guard has already refused; never store without a key
        raise APIError(401, "unauthorized", "send an API key")
    named = form.get("workspace_id")
    if named is None:
        return sorted(principal.workspaces)
    if not principal.sees(named):
        raise APIError(404, "workspace_not_found", "no such workspace")
    return [named]
