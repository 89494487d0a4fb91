"""A profile's ``new_findings`` thresholds in the manifest schema: a standard validator and the service
(inline at the API, parsed, fetched by a worker) agree on good and bad documents, with the same
paths and messages as the total thresholds; the parsed profile and the resolved manifest carry it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tasks import manifest as manifests
from tests.unit.test_manifest_schema import A_COUNT, FETCHED_PATH, STANDARD, _fetched, _inline
from workers.pipeline.manifest import select_profile

GOOD: list[Any] = [
    {"profiles": [{"name": "gate", "tools": ["bandit"], "thresholds": {"high": 10},
                   "new_findings": {"critical": 0, "high": 0}}]},
    {"profiles": [{"name": "gate", "new_findings": {}}]},
    {"profiles": [{"name": "gate", "new_findings": {"info": 1000}}]},
]
BAD: list[tuple[Any, str, str]] = [
    ({"profiles": [{"name": "x", "new_findings": []}]}, "profiles[0].new_findings", "must be an object"),
    ({"profiles": [{"name": "x", "new_findings": 0}]}, "profiles[0].new_findings", "must be an object"),
    ({"profiles": [{"name": "x", "new_findings": {"severe": 1}}]}, "profiles[0].new_findings.severe",
     "unknown severity; use one of critical, high, medium, low, info"),
    ({"profiles": [{"name": "x", "new_findings": {"high": -1}}]}, "profiles[0].new_findings.high", A_COUNT),
    ({"profiles": [{"name": "x", "new_findings": {"high": "0"}}]}, "profiles[0].new_findings.high", A_COUNT),
    ({"profiles": [{"name": "x", "new_findings": {"high": True}}]}, "profiles[0].new_findings.high", A_COUNT),
    ({"profiles": [{"name": "x", "new_findings": {"high": 0.5}}]}, "profiles[0].new_findings.high", A_COUNT),
]


@pytest.mark.parametrize("doc", GOOD, ids=lambda d: json.dumps(d)[:60])
def test_new_findings_thresholds_are_accepted_by_the_schema_and_the_service(doc: Any) -> None:
    assert all(valid(doc) for valid in STANDARD)
    assert _inline(doc) is None and _inline(doc, strict=True) is None and _fetched(doc) is None


@pytest.mark.parametrize("doc, path, message", BAD, ids=lambda d: json.dumps(d)[:60])
def test_bad_new_findings_thresholds_are_refused_naming_the_path(doc: Any, path: str, message: str) -> None:
    assert not any(valid(doc) for valid in STANDARD)
    for errors in (_inline(doc), _inline(doc, strict=True)):
        assert errors is not None and message in errors.get(path, []), errors
    fetched = _fetched(doc)  # a fetched document's paths name the schema only, never one of its keys
    path = FETCHED_PATH.get(path, path.replace(".severe", ""))
    assert fetched is not None and any(message in m for m in fetched.get(path, [])), fetched


def test_the_profile_and_the_resolved_manifest_carry_the_thresholds_on_new_findings() -> None:
    doc = GOOD[0]
    parsed = manifests.parse(doc)
    profile = parsed.profile("gate")
    assert profile is not None and profile.new_findings == {"critical": 0, "high": 0}
    assert profile.thresholds == {"high": 10}
    resolved = select_profile(json.dumps(doc), parsed, "gate", "inline", {"bandit"})
    assert resolved.new_findings == {"critical": 0, "high": 0} and resolved.thresholds == {"high": 10}
    assert resolved.info["policy_new_findings"] == {"critical": 0, "high": 0}
    # a profile without them, and a built-in profile, gate on nothing new
    assert manifests.parse({"profiles": [{"name": "p"}]}).profiles["p"].new_findings == {}
    assert select_profile("", None, "light", "builtin").new_findings == {}


def test_the_schema_describes_new_findings() -> None:
    described = manifests.SCHEMA["$defs"]["profile"]["properties"]["new_findings"]["description"]
    assert "baseline" in described and "accepted_risk" in described
