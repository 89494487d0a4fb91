import pytest

from tasks import manifest as m
from tasks.profiles import BUILTIN_PROFILES, builtin
from workers.pipeline.manifest import select_profile
from workers.pipeline.policy import evaluate


def test_builtin_profiles_case_insensitive():
    assert builtin("LIGHT") is BUILTIN_PROFILES["light"]
    assert {"smoke", "light", "thorough", "sbom"} <= set(BUILTIN_PROFILES)


def test_cue_wrapper_and_digest():
    obj = {"manifest": {"product": "p", "version": "1", "profiles": [{"name": "Fast", "tools": [
        "bandit", {"id": "semgrep", "config": {"rules": "x"}}], "thresholds": {"high": 0}}],
        "bundle": {"runtimeCeilingMinutes": 5}}}
    parsed = m.parse(obj)
    assert parsed.product == "p" and parsed.runtime_ceiling_minutes == 5
    prof = parsed.profile("fast")
    assert prof.tools == ("bandit", "semgrep") and prof.tool_config == {"semgrep": {"rules": "x"}}
    assert m.digest(m.inline_text({"b": 1, "a": 2})) == m.digest('{"a": 2, "b": 1}')


@pytest.mark.parametrize("bad", [
    [], {"profiles": {}}, {"profiles": [{"tools": []}]}, {"profiles": [{"name": "x", "tools": [3]}]},
    {"profiles": [{"name": "x", "thresholds": {"severe": 1}}]}, {"bundle": {"runtimeCeilingMinutes": 0}},
    {"owners": "me"},
])
def test_invalid_manifests(bad):
    with pytest.raises(m.ManifestInvalid):
        m.parse(bad)


def test_profile_selection_and_fallback():
    parsed = m.parse({"profiles": [{"name": "light", "tools": []}, {"name": "mine", "tools": ["bandit"],
                                                                     "thresholds": {"high": 0}}]})
    empty = select_profile("{}", parsed, "Light", "inline")
    assert empty.profile_resolved == "light" and empty.tools == list(BUILTIN_PROFILES["light"].tools)
    mine = select_profile("{}", parsed, "MINE", "inline")
    assert mine.tools == ["bandit"] and mine.thresholds == {"high": 0}
    verdict = evaluate(mine, {"by_severity": {"high": 2}})
    assert verdict["passed"] is False and verdict["violations"][0]["count"] == 2
    assert evaluate(mine, {"by_severity": {"high": 0}})["passed"] is True
    with pytest.raises(m.ManifestInvalid):
        select_profile("{}", parsed, "unknown", "inline")


def test_all_unknown_tools_fall_back_to_the_builtin_and_are_recorded():
    parsed = m.parse({"profiles": [
        {"name": "Standard", "tools": ["acme-scan", {"name": "other-tool"}]},
        {"name": "Mixed", "tools": ["bandit", "acme-scan"]},
        {"name": "custom", "tools": ["acme-scan"]},
    ]})
    known = {"bandit", "ruff"}
    std = select_profile("{}", parsed, "STANDARD", "inline", known)
    assert std.profile_resolved == "standard" and std.fallback
    assert std.tools == list(BUILTIN_PROFILES["standard"].tools)
    assert std.unsupported == ["acme-scan", "other-tool"]
    info = std.info
    assert info["unsupported_manifest_tools"] == ["acme-scan", "other-tool"]
    assert info["profile_fallback_to_builtin"] is True
    mixed = select_profile("{}", parsed, "mixed", "inline", known)
    assert mixed.profile_resolved == "manifest:Mixed" and not mixed.fallback
    assert mixed.tools == ["bandit", "acme-scan"] and mixed.unsupported == ["acme-scan"]
    # No built-in of that name to fall back to: the manifest is unusable for this profile.
    with pytest.raises(m.ManifestInvalid):
        select_profile("{}", parsed, "custom", "inline", known)
