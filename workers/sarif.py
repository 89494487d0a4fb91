"""Findings as SARIF 2.1.0, with relative paths, a severity and stable fingerprints; once the scan
is compared with its baseline, each result's ``baselineState`` and the logical finding it belongs to
(``annotate``)."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, MutableMapping
from typing import Any

from tasks.states import SEVERITIES
from workers.scanners.base import Finding

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
FINGERPRINT_KEY = "certusFindingHash/v1"
# The logical finding a result belongs to (one weakness at one place, whichever tools report it:
# workers/findings.py), in the result's ``fingerprints``.
LOGICAL_KEY = "certusLogicalFinding/v1"
_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
_SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": "0.0"}


def _normalise(text: str | None) -> str:
    return " ".join((text or "").split())


def anchor(finding: Finding) -> str:
    """The code a finding flags, whitespace normalised (its message when the tool quotes no code):
    what its fingerprints cover instead of its line number."""
    return _normalise(finding.snippet) or _normalise(finding.message)


def fingerprints(findings: list[Finding]) -> list[str]:
    """The same finding in the same code gives the same fingerprint, even when lines move: the hash
    covers the tool, rule, file and the flagged code (not its line number), plus an occurrence
    counter for identical code in one file."""
    seen: Counter[str] = Counter()
    out = []
    for f in findings:
        base = "\x1f".join([f.tool, f.rule_id, f.path or "", anchor(f)])
        seen[base] += 1
        out.append(hashlib.sha256(f"{base}\x1f{seen[base]}".encode()).hexdigest())
    return out


def fingerprinted(findings: list[Finding]) -> list[tuple[Finding, str]]:
    """A tool's findings in the order its SARIF file lists them, each with its fingerprint there."""
    ordered = sorted(findings, key=lambda f: (f.path or "", f.line or 0, f.rule_id, f.message))
    return list(zip(ordered, fingerprints(ordered), strict=True))


def build(tool: str, version: str, findings: list[Finding], *, information_uri: str | None = None) -> dict[str, Any]:
    rules: dict[str, dict[str, Any]] = {}
    results = []
    for finding, fp in fingerprinted(findings):
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


def annotate(doc: dict[str, Any], logical: Mapping[tuple[str, str], str], states: Mapping[str, str] | None,
             suppressions: Mapping[str, dict[str, Any]], absent: MutableMapping[str, list[dict[str, Any]]]) -> bool:
    """Mark the results of ``doc`` (a SARIF file of the bundle) in place; returns whether it changed.

    ``logical``: (tool, fingerprint in its file) -> the logical finding's fingerprint, given to each
    result as ``fingerprints[LOGICAL_KEY]``. ``states``: logical fingerprint -> ``new``,
    ``unchanged`` or ``updated``, each result's ``baselineState`` (None: the scan was compared with
    nothing, so no result carries one). ``suppressions``: logical fingerprint -> a SARIF suppression
    (triage that holds). ``absent``: tool -> results of the baseline's findings this scan no longer
    has (``baselineState: absent``), appended to that tool's run (and taken out of ``absent``)."""
    changed = False
    for run in doc.get("runs") or []:
        tool = str(((run.get("tool") or {}).get("driver") or {}).get("name") or "")
        for result in run.get("results") or []:
            own = (result.get("partialFingerprints") or {}).get(FINGERPRINT_KEY)
            fp = logical.get((tool, own)) if isinstance(own, str) else None
            if fp is None:
                continue
            result.setdefault("fingerprints", {})[LOGICAL_KEY] = fp
            if states is not None and fp in states:
                result["baselineState"] = states[fp]
            if fp in suppressions:
                result["suppressions"] = [suppressions[fp]]
            changed = True
        gone = absent.pop(tool, [])
        if gone:
            run.setdefault("results", []).extend(gone)
            changed = True
    return changed


def absent_result(rule_id: str, severity: str, message: str, path: str | None, line: int | None,
                  fingerprint: str) -> dict[str, Any]:
    """A finding of the baseline that this scan no longer has, as a result of its tool's run."""
    result: dict[str, Any] = {
        "ruleId": rule_id,
        "level": _LEVEL.get(severity, "warning"),
        "message": {"text": message or rule_id},
        "baselineState": "absent",
        "fingerprints": {LOGICAL_KEY: fingerprint},
        "properties": {"severity": severity},
    }
    if path:
        location: dict[str, Any] = {"artifactLocation": {"uri": path, "uriBaseId": "SRCROOT"}}
        if line:
            location["region"] = {"startLine": line}
        result["locations"] = [{"physicalLocation": location}]
    return result
