"""Marshmallow schemas of the findings endpoints: the listing's query, the triage body, the diff's
query, and (for the OpenAPI document) what they answer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import INCLUDE, RAISE, Schema, ValidationError, fields, validate

from app.schemas.patterns import Whole, shown_as_is
from app.schemas.scans import SLUG
from tasks.findings import MAX_LIMIT, MAX_PERSON, MAX_REASON, MAX_TOOL, TRIAGE_TARGETS, FindingState
from tasks.states import SEVERITIES
from tasks.textsafe import HIDDEN_MESSAGE, visible

TEST_ID = r"^test_[0-9a-f]{12}$"
STATES = tuple(s.value for s in FindingState)
TRIAGE_STATES = tuple(s.value for s in FindingState if s in TRIAGE_TARGETS)
# A query's filters are short: together they must fit in one request line (gunicorn's
# limit_request_line, stack/gunicorn_conf.py) even when every character is percent-encoded UTF-8.
MAX_PATH = 256
MAX_TEXT = 100
MAX_RULE_FILTER = 128
MAX_LIST = 100


def _one_or_more(names: tuple[str, ...]) -> str:
    """A pattern for a comma-separated list of ``names`` (one at least)."""
    word = "(" + "|".join(names) + ")"
    return rf"^{word}(,{word})*$"


def reason_text(value: Any) -> Any:
    """Like ``shown_as_is``, but a reason may run over several lines (and hold tabs)."""
    if isinstance(value, str) and visible(value.replace("\n", "").replace("\t", "")) != \
            value.replace("\n", "").replace("\t", ""):
        raise ValidationError(HIDDEN_MESSAGE + " (line breaks and tabs are kept)")
    return value


def in_utc(value: datetime) -> datetime:
    """An aware time that has a UTC equivalent (not one of the first or last hours of year 1 or 9999)."""
    try:
        value.astimezone(UTC)
    except OverflowError as exc:
        raise ValidationError("out of range") from exc
    return value


class FindingListQuerySchema(Schema):
    """The query of ``GET /v1/findings``."""

    class Meta:
        unknown = RAISE

    workspace_id = fields.String(required=True, validate=Whole(SLUG))
    component_id = fields.String(required=True, validate=Whole(SLUG))
    state = fields.String(validate=[validate.Length(max=MAX_LIST), Whole(_one_or_more(STATES))], metadata={
        "description": "effective states, comma-separated: a suppression past its expiry counts as open",
        "example": "open,accepted_risk"})
    severity = fields.String(validate=[validate.Length(max=MAX_LIST), Whole(_one_or_more(SEVERITIES))], metadata={
        "description": "severities, comma-separated", "example": "critical,high"})
    tool = fields.String(validate=[validate.Length(min=1, max=MAX_TOOL), shown_as_is], metadata={
        "description": "a finding one of whose sources is this tool", "example": "bandit"})
    rule = fields.String(validate=[validate.Length(min=1, max=MAX_RULE_FILTER), shown_as_is], metadata={
        "description": "a finding one of whose sources is this rule (with `tool`: of that tool)",
        "example": "B602"})
    path = fields.String(validate=[validate.Length(min=1, max=MAX_PATH), shown_as_is], metadata={
        "description": "a path prefix, case-sensitive", "example": "src/"})
    new_since = fields.String(validate=Whole(TEST_ID), metadata={
        "description": "a recorded scan of the component: only findings seen after it that it did not see",
        "example": "test_3f9c2a1b7d4e"})
    q = fields.String(validate=[validate.Length(min=1, max=MAX_TEXT), shown_as_is], metadata={
        "description": "text in the message, path or rule id, case-insensitive", "example": "shell"})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=MAX_LIMIT))
    cursor = fields.String(validate=validate.Length(max=200), metadata={
        "description": "the previous page's `next_cursor`"})


class TriageSchema(Schema):
    """The body of ``PATCH /v1/findings/{finding_id}``. The rules across fields (an accepted risk
    needs a reason, an owner and a future expiry; a false positive a reason; open takes neither
    owner nor expiry) are the store's, answered with 422 ``triage_invalid``."""

    class Meta:
        unknown = RAISE

    state = fields.String(required=True, validate=validate.OneOf(TRIAGE_STATES),
                          metadata={"example": "accepted_risk"})
    reason = fields.String(allow_none=True, validate=[validate.Length(max=MAX_REASON), reason_text],
                           metadata={"example": "only reachable from the admin console; fix planned in SEC-142"})
    owner = fields.String(allow_none=True, validate=[validate.Length(max=MAX_PERSON), shown_as_is],
                          metadata={"example": "alice@example.com"})
    expires_at = fields.AwareDateTime(allow_none=True, validate=in_utc, metadata={
        "description": "when the suppression lapses (ISO 8601 with a time zone); the finding counts as "
                       "open again from then on", "example": "2027-01-31T00:00:00Z"})


class DiffQuerySchema(Schema):
    """The query of ``GET /v1/security-scans/{test_id}/diff``."""

    class Meta:
        unknown = RAISE

    against = fields.String(validate=Whole(TEST_ID), metadata={
        "description": "the scan to compare with (default: the baseline the scan was compared with)",
        "example": "test_0a1b2c3d4e5f"})
    include_unchanged = fields.Boolean(load_default=False, metadata={
        "description": "also list the unchanged findings (always counted)"})


# -- answers ---------------------------------------------------------------------------------------

class _Open(Schema):
    class Meta:
        unknown = INCLUDE


class FindingSourceSchema(_Open):
    tool = fields.String(required=True, metadata={"example": "bandit"})
    rule_id = fields.String(required=True, metadata={"example": "B602"})


class FindingSchema(_Open):
    id = fields.Integer(required=True, metadata={"example": 4182})
    workspace_id = fields.String(required=True, metadata={"example": "acme"})
    component_id = fields.String(required=True, metadata={"example": "billing"})
    fingerprint = fields.String(required=True)
    tool = fields.String(required=True, metadata={"description": "the tool of the most severe report",
                                                  "example": "bandit"})
    rule_id = fields.String(required=True, metadata={"example": "B602"})
    sources = fields.List(fields.Nested(FindingSourceSchema), required=True, metadata={
        "description": "every tool and rule that reported it"})
    severity = fields.String(required=True, metadata={"enum": list(SEVERITIES)})
    path = fields.String(required=True, metadata={"example": "billing/export.py"})
    line = fields.Integer(required=True, allow_none=True)
    message = fields.String(required=True)
    cwe = fields.String(required=True, allow_none=True, metadata={"example": "CWE-78"})
    state = fields.String(required=True, metadata={"enum": list(STATES), "description": "as triaged or set by a scan"})
    effective_state = fields.String(required=True, metadata={
        "enum": list(STATES), "description": "what it counts as now: `open` once a suppression has expired"})
    expired = fields.Boolean(required=True, metadata={
        "description": "true when a false_positive or accepted_risk has passed its `expires_at`"})
    triage_reason = fields.String(required=True, allow_none=True)
    triage_owner = fields.String(required=True, allow_none=True)
    expires_at = fields.DateTime(required=True, allow_none=True)
    triaged_by = fields.String(required=True, allow_none=True, metadata={
        "description": "the API key that last triaged it (`name (key id)`), or `scan`"})
    triaged_at = fields.DateTime(required=True, allow_none=True)
    first_seen_test_id = fields.String(required=True, metadata={"example": "test_0a1b2c3d4e5f"})
    last_seen_test_id = fields.String(required=True, metadata={"example": "test_3f9c2a1b7d4e"})


class FindingPageSchema(_Open):
    workspace_id = fields.String(required=True)
    component_id = fields.String(required=True)
    items = fields.List(fields.Nested(FindingSchema), required=True, metadata={
        "description": "most severe first, then oldest first"})
    next_cursor = fields.String(required=True, allow_none=True, metadata={"description": "null on the last page"})


class TriageEventSchema(_Open):
    id = fields.Integer(required=True)
    actor = fields.String(required=True, metadata={"description": "the API key (`name (key id)`), or `scan`",
                                                   "example": "alice (key 58a376a11372)"})
    at = fields.DateTime(required=True)
    from_state = fields.String(required=True, metadata={"enum": list(STATES)})
    to_state = fields.String(required=True, metadata={"enum": list(STATES)})
    reason = fields.String(required=True, allow_none=True)
    owner = fields.String(required=True, allow_none=True)
    expires_at = fields.DateTime(required=True, allow_none=True)
    scan_test_id = fields.String(required=True, allow_none=True, metadata={
        "description": "the scan that made the change, for a change made by a scan"})


class FindingHistorySchema(_Open):
    finding_id = fields.Integer(required=True)
    items = fields.List(fields.Nested(TriageEventSchema), required=True, metadata={"description": "oldest first"})


class DiffScanSchema(_Open):
    test_id = fields.String(required=True)
    branch = fields.String(required=True, allow_none=True)
    commit = fields.String(required=True, allow_none=True)
    status = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    finding_count = fields.Integer(required=True)


class DiffEntrySchema(_Open):
    finding_id = fields.Integer(required=True)
    fingerprint = fields.String(required=True)
    tool = fields.String(required=True)
    rule_id = fields.String(required=True)
    severity = fields.String(required=True, metadata={"enum": list(SEVERITIES)})
    path = fields.String(required=True)
    line = fields.Integer(required=True, allow_none=True)
    message = fields.String(required=True)
    cwe = fields.String(required=True, allow_none=True)


def _by_severity() -> fields.Dict:
    return fields.Dict(keys=fields.String(), values=fields.Integer(), required=True,
                       metadata={"example": {"critical": 0, "high": 1, "medium": 0, "low": 0, "info": 0}})


class DiffCountsSchema(_Open):
    new = _by_severity()
    unchanged = _by_severity()
    updated = _by_severity()
    fixed = _by_severity()


class DiffSchema(_Open):
    test_id = fields.String(required=True, metadata={"description": "the scan compared (its findings are `new`)"})
    against = fields.String(required=True, metadata={"description": "the scan it is compared with"})
    workspace_id = fields.String(required=True)
    component_id = fields.String(required=True)
    head = fields.Nested(DiffScanSchema, required=True)
    base = fields.Nested(DiffScanSchema, required=True)
    counts = fields.Nested(DiffCountsSchema, required=True, metadata={"description": "by severity"})
    totals = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True,
                         metadata={"example": {"new": 2, "unchanged": 240, "updated": 0, "fixed": 5}})
    new = fields.List(fields.Nested(DiffEntrySchema), required=True, metadata={
        "description": "seen by `test_id`, not by `against`"})
    updated = fields.List(fields.Nested(DiffEntrySchema), required=True, metadata={
        "description": "seen by both with another severity (as `test_id` saw it)"})
    fixed = fields.List(fields.Nested(DiffEntrySchema), required=True, metadata={
        "description": "seen by `against`, not by `test_id` (as `against` saw it)"})
    unchanged = fields.List(fields.Nested(DiffEntrySchema), metadata={
        "description": "seen by both with the same severity; only with `include_unchanged=true`"})
