"""Marshmallow schema of the upload request body."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from app.schemas.patterns import Whole
from tasks.uploads import TIERS

SIGNER = r"^[A-Za-z0-9][A-Za-z0-9@._:+-]{0,127}$"


class UploadRequestSchema(Schema):
    class Meta:
        unknown = RAISE

    tier = fields.String(load_default="verified", validate=validate.OneOf(TIERS))
    signer = fields.String(load_default=None, allow_none=True, validate=Whole(
        SIGNER, error="a signer identity: letters, digits and @._:+- (at most 128)"))
