"""Opening an upload request: one in flight per scan, then the ``uploads.verify`` task."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery

from app.services.errors import Conflict, NotFound, Unavailable
from app.services.scans import ScanService
from tasks import names
from tasks.api_keys import Principal
from tasks.uploads import DENIED, IN_FLIGHT, PENDING, UploadStore

log = logging.getLogger(__name__)


class UploadService:
    def __init__(self, uploads: UploadStore, celery: Celery, scans: ScanService) -> None:
        self.uploads = uploads
        self.celery = celery
        self.scans = scans

    def request(self, principal: Principal | None, test_id: str, tier: str, signer: str | None) -> dict[str, Any]:
        self.scans.get(principal, test_id)  # a scan of another workspace is not found, like a missing one
        created, move, request_id = self.uploads.open_request(test_id, tier, signer)
        if not created:
            if move.previous == "missing":
                raise NotFound("scan_not_found", "no such scan")
            if move.previous.startswith("scan:"):
                raise Conflict("scan_not_succeeded",
                               f"only a SUCCEEDED scan can be uploaded; this one is {move.previous[5:]}")
            if move.previous in IN_FLIGHT:
                state = self.uploads.state(test_id)
                return {"upload_permission_id": state.upload_permission_id,
                        "upload_status": state.upload_status,
                        "upload_request_id": state.upload_request_id, "existing": True}
            raise Conflict("upload_conflict", f"the upload is {move.previous}; try again")
        self.uploads.emit(test_id, PENDING, f"upload requested (tier {tier})", tier=tier)
        try:
            self.celery.send_task(names.UPLOAD_VERIFY, args=[test_id, request_id], queue=names.UPLOADS_QUEUE)
        except Exception as exc:
            log.error("enqueue of upload %s failed: %s", test_id, exc.__class__.__name__)
            reason = "the upload could not be queued"
            self.uploads.move(test_id, DENIED, allowed_from=[PENDING], request_id=request_id, upload_reason=reason)
            self.uploads.emit(test_id, DENIED, reason)
            raise Unavailable("queue_unavailable", reason, retry_after=5) from exc
        return {"upload_permission_id": None, "upload_status": PENDING, "upload_request_id": request_id,
                "existing": False}
