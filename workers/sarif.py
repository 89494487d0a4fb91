"""Findings as SARIF 2.1.0, with relative paths, a severity and stable fingerprints."""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

from tasks.states import SEVERITIES
from workers.scanners.base import Finding

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
FINGERPRINT_KEY = "certusFindingHash/v1"
_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
_SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": "0.0"}


def _normalise(text: str | None) -> str:
    return " ".join((text or "").split())


def fingerprints(findings: list[Finding]) -> list[str]:
    """The same finding in the same code gives the same fingerprint, even when lines move: the hash
    covers the tool, rule, file and the flagged code (not its line number), plus an occurrence
    counter for identical code in one file."""
    seen: Counter[str] = Counter()
    out = []
    for f in findings:
        anchor = _normalise(f.snippet) or _normalise(f.message)
        base = "\x1f".join([f.tool, f.rule_id, f.path or "", anchor])
        seen[base] += 1
        out.append(hashlib.sha256(f"{base}\x1f{seen[base]}".encode()).hexdigest())
    return out


def build(tool: str, version: str, findings: list[Finding], *, information_uri: str | None = None) -> dict[str, Any]:
    ordered = sorted(findings, key=lambda f: (f.path or "", f.line or 0, f.rule_id, f.message))
    rules: dict[str, dict[str, Any]] = {}
    results = []
    for finding, fp in zip(ordered, fingerprints(ordered), strict=True):
        if finding.rule_id not in rules:
            rule: dict[str, Any] = {"id": finding.rule_id, "shortDescription": {"text": finding.rule_name
                                                                                  or finding.rule_id}}
            if finding.help_uri:
                rule["helpUri"] = finding.help_uri
            rule["properties"] = {"security-severity": _SECURITY_SEVERITY[finding.severity]}
            rules[finding.rule_id] = rule
        result: dict[str, Any] = {
            "ruleId": finding.rule_id,
            "level": _LEVEL[finding.severity],
            "message": {"text": finding.message},
            "partialFingerprints": {FINGERPRINT_KEY: fp},
            "properties": {"severity": finding.severity, **finding.properties},
        }
        if finding.path:
            region: dict[str, Any] = {}
            if finding.line:
                region["startLine"] = finding.line
                if finding.end_line and finding.end_line >= finding.line:
                    region["endLine"] = finding.end_line
                if finding.column:
                    region["startColumn"] = finding.column
            if finding.snippet:
                region["snippet"] = {"text": finding.snippet}
            location: dict[str, Any] = {"artifactLocation": {"uri": finding.path, "uriBaseId": "SRCROOT"}}
            if region:
                location["region"] = region
            result["locations"] = [{"physicalLocation": location}]
        results.append(result)
    driver: dict[str, Any] = {"name": tool, "version": version, "rules": list(rules.values())}
    if information_uri:
        driver["informationUri"] = information_uri
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": driver},
            "originalUriBaseIds": {"SRCROOT": {"description": {"text": "root of the scanned source"}}},
            "results": results,
        }],
    }


def severity_counts(findings: list[Finding]) -> dict[str, int]:
    counts = {str(s): 0 for s in SEVERITIES}
    for f in findings:
        counts[f.severity] += 1
    return counts
