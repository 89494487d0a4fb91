"""Explicit task and queue names: the API sends tasks by name and never imports the engine."""

SCAN_RUN = "scans.run"
UPLOAD_VERIFY = "uploads.verify"
UPLOAD_PUBLISH = "uploads.publish"

SCANS_QUEUE = "scans"
UPLOADS_QUEUE = "uploads"
