"""Marshmallow schemas of what the API answers. They exist for the OpenAPI document (the service
builds its answers from the store directly); extra keys are allowed so adding a field to a record
never breaks the document."""

from __future__ import annotations

from marshmallow import INCLUDE, Schema, fields

from tasks.api_keys import ROLES


class _Open(Schema):
    class Meta:
        unknown = INCLUDE


class ErrorBodySchema(_Open):
    code = fields.String(required=True, metadata={"description": "stable machine-readable code (docs/errors.md)",
                                                  "example": "validation_error"})
    message = fields.String(required=True, metadata={"example": "the request has invalid fields"})
    fields_ = fields.Dict(data_key="fields", metadata={"description": "field name -> list of problems",
                                                       "example": {"git_url": ["must name a host"]}})
    request_id = fields.String(metadata={"example": "9f2c4e1a0b7d3c55"})


class ErrorSchema(_Open):
    error = fields.Nested(ErrorBodySchema, required=True)


class ScanCreatedSchema(_Open):
    test_id = fields.String(required=True, metadata={"example": "test_3f9c2a1b7d4e"})
    workspace_id = fields.String(required=True)
    component_id = fields.String(required=True)
    assessment_id = fields.String(required=True)
    status = fields.String(required=True, metadata={"example": "QUEUED"})
    profile = fields.String(required=True)
    manifest_digest = fields.String(allow_none=True, required=True)
    stream_url = fields.String(required=True, metadata={"example": "/v1/security-scans/test_3f9c2a1b7d4e/stream"})
    status_url = fields.String(required=True, metadata={"example": "/v1/security-scans/test_3f9c2a1b7d4e"})


class PhaseSchema(_Open):
    name = fields.String(required=True, metadata={"example": "clone"})
    status = fields.String(required=True, metadata={"example": "succeeded"})
    started_at = fields.String(allow_none=True)
    finished_at = fields.String(allow_none=True)
    duration_s = fields.Float(allow_none=True)


class CodeMessageSchema(_Open):
    code = fields.String(required=True)
    message = fields.String(required=True)


class ScanRecordSchema(_Open):
    test_id = fields.String(required=True, metadata={"example": "test_3f9c2a1b7d4e"})
    workspace_id = fields.String(required=True)
    component_id = fields.String(required=True)
    assessment_id = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": ["QUEUED", "RUNNING", "SUCCEEDED", "FAILED",
                                                              "CANCELLED"]})
    source_type = fields.String(allow_none=True)
    git_url = fields.String(allow_none=True)
    branch = fields.String(allow_none=True)
    commit = fields.String(allow_none=True)
    resolved_commit = fields.String(allow_none=True)
    directory_path = fields.String(allow_none=True)
    archive_path = fields.String(allow_none=True)
    source_fields = fields.Dict(keys=fields.String(), values=fields.String(), metadata={
        "description": "the request fields of a source kind other than git, directory and archive (a plugin's); "
                       "absent for those three, whose fields are the record's own"})
    profile = fields.String(required=True)
    created_at = fields.String(required=True, metadata={"example": "2026-01-05T10:00:00Z"})
    started_at = fields.String(allow_none=True)
    completed_at = fields.String(allow_none=True)
    phases = fields.List(fields.Nested(PhaseSchema))
    summary = fields.Dict(allow_none=True, metadata={
        "description": "findings: total, by_severity, by_tool, executed_tools, skipped_tools",
        "example": {"total": 3, "by_severity": {"high": 1, "medium": 1, "low": 1},
                    "by_tool": {"bandit": {"high": 1, "medium": 1, "low": 1}}}})
    policy = fields.Dict(allow_none=True, metadata={
        "description": "passed, thresholds, counts, violations",
        "example": {"passed": False, "thresholds": {"high": 0}, "counts": {"high": 1},
                    "violations": [{"severity": "high", "threshold": 0, "count": 1,
                                    "message": "1 high findings exceed the threshold of 0"}]}})
    artifacts = fields.Dict(allow_none=True, metadata={"description": "key -> path inside the bundle"})
    warnings = fields.List(fields.Nested(CodeMessageSchema))
    errors = fields.List(fields.Nested(CodeMessageSchema))
    manifest_digest = fields.String(allow_none=True)
    manifest_metadata = fields.Dict(allow_none=True)
    upload_status = fields.String(allow_none=True, metadata={
        "description": "pending, permitted, uploaded, denied or upload_failed"})
    upload_permission_id = fields.String(allow_none=True)
    verification_proof = fields.Raw(allow_none=True)
    remote_artifacts = fields.Raw(allow_none=True)
    stream_url = fields.String(required=True)


class ScanListSchema(_Open):
    items = fields.List(fields.Nested(ScanRecordSchema), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


class CancelSchema(_Open):
    test_id = fields.String(required=True)
    status = fields.String(required=True, metadata={"example": "CANCELLED"})
    cancel_requested = fields.Boolean(required=True)


class EventSchema(_Open):
    id = fields.String(required=True, metadata={"example": "1767607200000-0"})
    type = fields.String(required=True, metadata={
        "enum": ["phase", "tool_start", "log", "tool_complete", "error", "scan_complete", "upload"]})
    timestamp = fields.Float(required=True)


class EventsPageSchema(_Open):
    events = fields.List(fields.Nested(EventSchema), required=True)
    next_after = fields.String(required=True)
    complete = fields.Boolean(required=True)


class HealthSchema(_Open):
    status = fields.String(required=True, metadata={"example": "ok"})
    scanning_mode = fields.String(required=True, metadata={"example": "celery"})
    security_module_available = fields.Boolean(required=True)


class ReadySchema(_Open):
    status = fields.String(required=True, metadata={"example": "ready"})


class StatsSchema(_Open):
    scans = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    uploads = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    active_streams = fields.Integer(required=True)
    queue_depth = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    workers_online = fields.Integer(required=True)


class ArtifactFileSchema(_Open):
    path = fields.String(required=True, metadata={"example": "reports/sast/bandit.sarif.json"})
    size = fields.Integer(required=True)
    sha256 = fields.String(required=True)


class ArtifactListSchema(_Open):
    test_id = fields.String(required=True)
    files = fields.List(fields.Nested(ArtifactFileSchema), required=True)
    total_size = fields.Integer(required=True)


class ArchiveUploadSchema(_Open):
    archive_path = fields.String(required=True, metadata={
        "description": "an id to pass as `archive_path` with `source_type: archive`",
        "example": "upload_0f1e2d3c4b5a69788796a5b4c3d2e1f0"})
    archive_hash = fields.String(required=True, metadata={"description": "sha256 of the archive"})
    filename = fields.String(required=True, metadata={"example": "src.tar.gz"})
    size = fields.Integer(required=True)
    workspaces = fields.List(fields.String(), required=True, metadata={
        "description": "the workspaces whose scans may use the archive", "example": ["acme"]})


class UploadAcceptedSchema(_Open):
    upload_permission_id = fields.String(allow_none=True, required=True, metadata={
        "description": "the Trust's permission id; null until the Trust has answered"})
    upload_status = fields.String(required=True, metadata={
        "enum": ["pending", "permitted", "uploaded", "denied", "upload_failed"]})
    upload_request_id = fields.String(metadata={"description": "this upload's own id, known at once"})
    existing = fields.Boolean(metadata={"description": "true when an upload in flight was returned"})


class StreamTokenSchema(_Open):
    token = fields.String(required=True)
    expires_in = fields.Integer(required=True, metadata={"description": "seconds"})
    query_parameter = fields.String(required=True, metadata={"example": "token"})


class KeyCreatedSchema(_Open):
    key = fields.String(required=True, metadata={"description": "the API key; shown only here",
                                                 "example": "ca_58a376a11372_…"})
    key_id = fields.String(required=True, metadata={"example": "58a376a11372"})
    role = fields.String(required=True, metadata={"enum": list(ROLES)})
    workspaces = fields.List(fields.String(), required=True, metadata={"example": ["acme"]})
    name = fields.String(required=True)


class KeyInfoSchema(_Open):
    key_id = fields.String(required=True, metadata={"example": "58a376a11372"})
    role = fields.String(required=True, metadata={"enum": list(ROLES)})
    workspaces = fields.List(fields.String(), required=True, metadata={"example": ["acme"]})
    name = fields.String(required=True)
    created_at = fields.Float(allow_none=True, metadata={"description": "Unix time"})


class KeyListSchema(_Open):
    items = fields.List(fields.Nested(KeyInfoSchema), required=True)
