"""HTTP endpoints of the findings store: ``/v1/findings`` (a component's findings, one finding, its
history, triage) and ``/v1/security-scans/{test_id}/diff`` (two scans compared). Who sees and may
change what: ``app.services.findings``."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from app.auth import caller
from app.routes.scans import json_body
from app.schemas.findings import DiffQuerySchema, FindingListQuerySchema, TriageSchema
from app.services.findings import FindingsService

bp = Blueprint("findings", __name__)

_list_schema = FindingListQuerySchema()
_triage_schema = TriageSchema()
_diff_schema = DiffQuerySchema()


def service() -> FindingsService:
    findings: FindingsService = current_app.extensions["certus"].findings
    return findings


@bp.get("/v1/findings")
def list_findings() -> Response:
    """A component's findings.
    ---
    get:
      summary: A component's findings, filtered, most severe first
      description: Every logical finding the component's recorded scans saw, with its stored `state`
        and its `effective_state` (a false_positive or accepted_risk past its `expires_at` counts as
        `open` again, and `expired` is true). The `state` filter is on the effective state. Page with
        `next_cursor`. A workspace the key does not hold answers 404 `workspace_not_found`.
      tags: [findings]
      parameters:
        - in: query
          schema: FindingListQuerySchema
      responses:
        200:
          description: One page of findings.
          content:
            application/json:
              schema: FindingPageSchema
        404: NotFound
    """
    query = _list_schema.load(request.args.to_dict())
    return jsonify(service().list(caller(), query))


@bp.get("/v1/findings/<int:finding_id>")
def get_finding(finding_id: int) -> Response:
    """One finding.
    ---
    get:
      summary: One finding, with its sources, state, effective state and triage
      tags: [findings]
      responses:
        200:
          description: The finding.
          content:
            application/json:
              schema: FindingSchema
    """
    return jsonify(service().get(caller(), finding_id))


@bp.get("/v1/findings/<int:finding_id>/history")
def finding_history(finding_id: int) -> Response:
    """A finding's history.
    ---
    get:
      summary: Every change of a finding's state, oldest first
      description: Who (an API key, or `scan` for a change a scan made), when, from which state to
        which, with the reason, owner and expiry given.
      tags: [findings]
      responses:
        200:
          description: The history.
          content:
            application/json:
              schema: FindingHistorySchema
    """
    return jsonify(service().history(caller(), finding_id))


@bp.patch("/v1/findings/<int:finding_id>")
def triage_finding(finding_id: int) -> Response:
    """Triage a finding.
    ---
    patch:
      summary: Set a finding's state (role `triager` or `admin`)
      description: "`accepted_risk` needs a `reason`, an `owner` and an `expires_at` in the future;
        `false_positive` a `reason` (an expiry is optional); `open` takes neither owner nor expiry.
        Otherwise 422 `triage_invalid`. A suppression counts until its `expires_at`, then the finding
        is open again without anything being run. The change and the key that made it are kept in the
        finding's history."
      tags: [findings]
      requestBody:
        required: true
        content:
          application/json:
            schema: TriageSchema
            example: {state: accepted_risk, reason: only reachable from the admin console,
                      owner: alice@example.com, expires_at: "2027-01-31T00:00:00Z"}
      responses:
        200:
          description: The finding as it is now.
          content:
            application/json:
              schema: FindingSchema
    """
    data = _triage_schema.load(json_body())
    return jsonify(service().triage(caller(), finding_id, data))


@bp.get("/v1/security-scans/<test_id>/diff")
def diff_scans(test_id: str) -> Response:
    """Two scans compared.
    ---
    get:
      summary: What a scan found compared with another scan of the same component
      description: "`new`: seen by `test_id`, not by `against`; `fixed`: the reverse; `updated`: seen by
        both with another severity; `unchanged`: seen by both alike (listed with `include_unchanged=true`,
        always counted). Counts by severity in `counts`. Both scans must have ended and be visible to
        the key (otherwise 404 `scan_not_found`), and be of one component (422 `scans_not_comparable`)."
      tags: [scans, findings]
      parameters:
        - in: query
          schema: DiffQuerySchema
      responses:
        200:
          description: The comparison.
          content:
            application/json:
              schema: DiffSchema
    """
    query = _diff_schema.load(request.args.to_dict())
    return jsonify(service().diff(caller(), test_id, query.get("against"),
                                  include_unchanged=query["include_unchanged"]))
