"""POST /v1/security-scans/{test_id}/upload-request."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from app.auth import caller
from app.routes.scans import json_body
from app.schemas.uploads import UploadRequestSchema
from app.services.uploads import UploadService

bp = Blueprint("uploads", __name__, url_prefix="/v1/security-scans")
_schema = UploadRequestSchema()


@bp.post("/<test_id>/upload-request")
def upload_request(test_id: str) -> tuple[Response, int]:
    """Request publication of a scan's bundle.
    ---
    post:
      summary: Ask Certus-Trust to permit publication, then promote to S3 golden and push to the registry
      description: Only for a SUCCEEDED scan. A request while one is in flight returns that one.
        Progress is reported in the scan status and as `upload` events on its stream.
      tags: [uploads]
      requestBody:
        required: false
        content:
          application/json:
            schema: UploadRequestSchema
            example: {tier: verified}
      responses:
        202:
          description: The upload is under way (or the one in flight).
          content:
            application/json:
              schema: UploadAcceptedSchema
        409: Conflict
    """
    body = json_body() if request.get_data() else {}
    data = _schema.load(body)
    svc: UploadService = current_app.extensions["certus"].uploads
    return jsonify(svc.request(caller(), test_id, data["tier"], data["signer"])), 202
