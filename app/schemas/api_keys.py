"""Marshmallow schema of the key-creation body (``POST /v1/keys``)."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from app.schemas.patterns import Whole, shown_as_is
from app.schemas.scans import SLUG
from tasks.api_keys import ROLES

MAX_WORKSPACES = 64


class KeyCreateSchema(Schema):
    class Meta:
        unknown = RAISE

    role = fields.String(required=True, validate=validate.OneOf(ROLES), metadata={"example": "submitter"})
    workspaces = fields.List(
        fields.String(validate=Whole(
            rf"{SLUG}|^\*$",
            error="a workspace id (lowercase letters, digits and -, at most 63) or * for all")),
        required=True, validate=validate.Length(min=1, max=MAX_WORKSPACES),
        metadata={"example": ["acme"]})
    name = fields.String(load_default="", validate=[
        validate.Length(max=200),
        Whole(r"^[^\x00-\x1f\x7f]*$", error="printable text, no control characters"), shown_as_is],
        metadata={"description": "a label shown in listings", "example": "ci"})
