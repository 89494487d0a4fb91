"""The policy verdict: findings per severity against the manifest profile's thresholds.

Rule: a threshold is the most findings of that severity allowed; exceeding it is a violation.
Violations do not change the scan's status (the scan itself succeeded); ``policy.passed`` is false
and clients gate on it (the CLI exits non-zero).
"""

from __future__ import annotations

from typing import Any

from workers.pipeline.manifest import ResolvedManifest


def evaluate(manifest: ResolvedManifest, summary: dict[str, Any]) -> dict[str, Any]:
    counts = dict(summary.get("by_severity", {}))
    violations = []
    for severity, limit in sorted(manifest.thresholds.items()):
        found = int(counts.get(severity, 0))
        if found > limit:
            violations.append({"severity": severity, "threshold": limit, "count": found,
                               "message": f"{found} {severity} findings exceed the threshold of {limit}"})
    return {"passed": not violations, "thresholds": manifest.thresholds, "counts": counts,
            "violations": violations}
