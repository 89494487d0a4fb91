"""Reading another tool's SARIF 2.1.0 into findings (paths made relative to the source root)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from workers.scanners.base import Finding
from workers.scanners.sourcefiles import line_text, relative


def findings_from_sarif(tool: str, doc: dict[str, Any], root: Path,
                        severity: Callable[[dict[str, Any], dict[str, Any]], str]) -> list[Finding]:
    """``severity(result, rule)`` decides each finding's severity."""
    out = []
    for run in doc.get("runs") or []:
        rules = {r.get("id"): r for r in ((run.get("tool") or {}).get("driver") or {}).get("rules") or []}
        for result in run.get("results") or []:
            rule_id = str(result.get("ruleId") or "unknown")
            rule = rules.get(rule_id, {})
            loc = ((result.get("locations") or [{}])[0].get("physicalLocation") or {})
            rel = relative(root, (loc.get("artifactLocation") or {}).get("uri"))
            region = loc.get("region") or {}
            line = region.get("startLine")
            snippet = ((region.get("snippet") or {}).get("text") or "").strip() or line_text(root, rel, line)
            out.append(Finding(
                tool=tool, rule_id=rule_id, message=str((result.get("message") or {}).get("text", "")),
                severity=severity(result, rule), path=rel, line=line, end_line=region.get("endLine"),
                column=region.get("startColumn"), snippet=snippet,
                rule_name=rule.get("name") or ((rule.get("shortDescription") or {}).get("text")),
                help_uri=rule.get("helpUri"), properties=dict(result.get("properties") or {})))
    return out
