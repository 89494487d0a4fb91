"""Marshmallow schema of the archive upload's form fields (the archive itself is the file `file`)."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields

from app.schemas.patterns import Whole
from app.schemas.scans import SLUG


class ArchiveUploadFormSchema(Schema):
    class Meta:
        unknown = RAISE

    workspace_id = fields.String(validate=Whole(SLUG), metadata={
        "description": "the workspace whose scans may use the archive; without it, the key's own workspaces",
        "example": "acme"})
