"""An advisory's severity: the CVSS v3 base score of its vector when it has one, else the
severity its database gives (GitHub's CRITICAL/HIGH/MODERATE/LOW), else ``high``: an unrated
known vulnerability is not passed off as minor."""

from __future__ import annotations

import math
from typing import Any

UNRATED = "high"

_AV = {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2}
_AC = {"L": 0.77, "H": 0.44}
_UI = {"N": 0.85, "R": 0.62}
_CIA = {"H": 0.56, "L": 0.22, "N": 0.0}
_PR_U = {"N": 0.85, "L": 0.62, "H": 0.27}
_PR_C = {"N": 0.85, "L": 0.68, "H": 0.5}
_NAMED = {"CRITICAL": "critical", "HIGH": "high", "MODERATE": "medium", "MEDIUM": "medium", "LOW": "low"}


def _roundup(value: float) -> float:
    scaled = round(value * 100000)
    if scaled % 10000 == 0:
        return scaled / 100000.0
    return (math.floor(scaled / 10000) + 1) / 10.0


def cvss3_base_score(vector: str) -> float | None:
    """The CVSS 3.0/3.1 base score of a vector string, or None when it is not one."""
    parts = vector.strip().split("/")
    if not parts or not parts[0].startswith("CVSS:3"):
        return None
    try:
        m = dict(p.split(":", 1) for p in parts[1:])
        scope_changed = m["S"] == "C"
        iss = 1 - (1 - _CIA[m["C"]]) * (1 - _CIA[m["I"]]) * (1 - _CIA[m["A"]])
        impact = 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15 if scope_changed else 6.42 * iss
        pr = (_PR_C if scope_changed else _PR_U)[m["PR"]]
        exploitability = 8.22 * _AV[m["AV"]] * _AC[m["AC"]] * pr * _UI[m["UI"]]
    except (KeyError, ValueError):
        return None
    if impact <= 0:
        return 0.0
    total = 1.08 * (impact + exploitability) if scope_changed else impact + exploitability
    return _roundup(min(total, 10.0))


def rating(score: float) -> str:
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    if score > 0:
        return "low"
    return "info"


def assess(advisory: dict[str, Any], affected: dict[str, Any]) -> dict[str, Any]:
    """``{"severity", "source", "score"?, "vector"?}`` for one affected package of an advisory."""
    for entry in list(affected.get("severity") or []) + list(advisory.get("severity") or []):
        if str(entry.get("type", "")).startswith("CVSS_V3"):
            score = cvss3_base_score(str(entry.get("score", "")))
            if score is not None:
                return {"severity": rating(score), "source": "cvss", "score": score, "vector": entry["score"]}
    for specific in (affected.get("database_specific"), advisory.get("database_specific")):
        if isinstance(specific, dict):
            named = _NAMED.get(str(specific.get("severity", "")).upper())
            if named:
                return {"severity": named, "source": "database"}
    return {"severity": UNRATED, "source": "unrated"}
