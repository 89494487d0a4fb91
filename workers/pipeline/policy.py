"""The policy verdict: a scan's findings against the manifest profile's rules.

Two rules, each a most-allowed count per severity; exceeding one is a violation that names its rule:
``thresholds`` counts every (logical) finding of the scan, ``new_findings`` the findings its baseline
did not have (without a baseline every finding is new). Findings whose triage holds (``false_positive``
or ``accepted_risk``, unexpired, in the findings store) count for neither; once the expiry passes
they count again. A profile with ``new_findings`` whose scan could not be compared with its baseline
(the findings store was out of reach) fails: the gate cannot pass without a comparison.

Violations do not change the scan's status (the scan itself succeeded); ``policy.passed`` is false
and clients gate on it (the CLI exits non-zero).
"""

from __future__ import annotations

from typing import Any

from tasks.findings import severity_counts
from workers.findings import MAX_LISTED, Conclusion, LogicalFinding
from workers.pipeline.manifest import ResolvedManifest

THRESHOLDS = "thresholds"
NEW_FINDINGS = "new_findings"


def _listed(findings: list[LogicalFinding]) -> dict[str, Any]:
    ordered = sorted(findings, key=lambda f: (f.lead.finding.path or "", f.lead.finding.line or 0, f.fingerprint))
    out: dict[str, Any] = {"findings": [f.brief() for f in ordered[:MAX_LISTED]]}
    if len(ordered) > MAX_LISTED:
        out["findings_truncated"] = True
    return out


def evaluate(manifest: ResolvedManifest, summary: dict[str, Any],
             conclusion: Conclusion | None = None) -> dict[str, Any]:
    """The verdict; ``conclusion``: the scan's logical findings, their comparison with its baseline and
    the triage that holds (None: the summary's counts alone)."""
    held = set(conclusion.suppressions) if conclusion is not None else set()
    logical = conclusion.findings.logical if conclusion is not None else {}
    if conclusion is not None:
        counts = conclusion.findings.by_severity(leave_out=held)
    else:
        counts = dict(summary.get("by_severity", {}))
    violations: list[dict[str, Any]] = []
    for severity, limit in sorted(manifest.thresholds.items()):
        found = int(counts.get(severity, 0))
        if found > limit:
            violation: dict[str, Any] = {
                "rule": THRESHOLDS, "severity": severity, "threshold": limit, "count": found,
                "message": f"{found} {severity} findings exceed the threshold of {limit}"}
            if conclusion is not None:
                violation.update(_listed([f for fp, f in logical.items()
                                          if fp not in held and f.severity == severity]))
            violations.append(violation)
    result: dict[str, Any] = {"passed": True, "thresholds": manifest.thresholds, "counts": counts}
    if manifest.new_findings:
        gate: dict[str, Any] = {"thresholds": manifest.new_findings, "counts": None,
                                "baseline_test_id": None}
        if conclusion is None or conclusion.diff is None:
            violations.append({
                "rule": NEW_FINDINGS, "severity": None, "threshold": None, "count": None,
                "message": "the scan could not be compared with a baseline, so the gate on new findings "
                           "cannot pass (see the scan's warnings)"})
        else:
            new = [f for f in conclusion.new() if f.fingerprint not in held]
            new_counts = severity_counts(f.severity for f in new)
            gate["counts"] = new_counts
            gate["baseline_test_id"] = conclusion.baseline.test_id if conclusion.baseline else None
            for severity, limit in sorted(manifest.new_findings.items()):
                found = new_counts.get(severity, 0)
                if found > limit:
                    violations.append({
                        "rule": NEW_FINDINGS, "severity": severity, "threshold": limit, "count": found,
                        "message": f"{found} new {severity} findings exceed the threshold of {limit}",
                        **_listed([f for f in new if f.severity == severity])})
        result[NEW_FINDINGS] = gate
    if conclusion is not None and (conclusion.suppressions or conclusion.expired):
        result["suppressed"] = [{**logical[fp].brief(), **_triage(t)} for fp, t in
                                ((t["fingerprint"], t) for t in conclusion.applied()) if fp in logical]
        result["expired_suppressions"] = [{**logical[fp].brief(), **_triage(t)} for fp, t in
                                          ((t["fingerprint"], t) for t in conclusion.lapsed()) if fp in logical]
    result["violations"] = violations
    result["passed"] = not violations
    return result


def _triage(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: entry[k] for k in ("state", "reason", "owner", "expires_at", "triaged_by")}
