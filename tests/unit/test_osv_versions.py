"""OSV range matching: ECOSYSTEM/SEMVER events, explicit versions, PEP 440 and SemVer ordering."""

from __future__ import annotations

import pytest

from workers.osv.severity import assess, cvss3_base_score
from workers.osv.versions import SemVer, fixed_versions, in_range, is_affected, parser_for


def _eco(*events, versions=None, kind="ECOSYSTEM"):
    entry = {"package": {"ecosystem": "PyPI", "name": "x"}, "ranges": [{"type": kind, "events": list(events)}]}
    if versions is not None:
        entry["versions"] = versions
    return entry


@pytest.mark.parametrize(("version", "expected"), [
    ("0.1", True), ("1.26.16", True), ("1.26.17", False), ("1.27", False),
    ("2.0.0", True), ("2.0.5", True), ("2.0.6", False), ("3.0", False), ("2.0.0rc1", False),
])
def test_unsorted_events_with_two_intervals(version, expected):
    # The events of PYSEC-2023-192 as published: not in version order.
    affected = _eco({"introduced": "2.0.0"}, {"fixed": "2.0.6"}, {"introduced": "0"}, {"fixed": "1.26.17"})
    assert is_affected("PyPI", version, affected) is expected


@pytest.mark.parametrize(("version", "expected"), [
    ("1.4", False), ("1.5", True), ("1.9.9", True), ("2.0", True), ("2.0.1", False), ("2.0.post1", False),
])
def test_last_affected_is_inclusive(version, expected):
    assert is_affected("PyPI", version, _eco({"introduced": "1.5"}, {"last_affected": "2.0"})) is expected


def test_pep440_ordering_not_string_ordering():
    affected = _eco({"introduced": "0"}, {"fixed": "1.10"})
    assert is_affected("PyPI", "1.9", affected)          # "1.9" > "1.10" as strings
    assert not is_affected("PyPI", "1.10.0", affected)   # equal under PEP 440
    assert is_affected("PyPI", "1.10rc1", affected)      # pre-release sorts before the release
    assert not is_affected("PyPI", "1.10.post1", affected)


def test_explicit_versions_list_matches_by_ecosystem_equality():
    affected = {"package": {"ecosystem": "PyPI", "name": "x"}, "versions": ["2.0", "2.1"]}
    assert is_affected("PyPI", "2.0", affected)
    assert is_affected("PyPI", "2.0.0", affected)  # PEP 440: 2.0 == 2.0.0
    assert not is_affected("PyPI", "2.2", affected)


def test_git_ranges_are_ignored_and_unparseable_versions_do_not_match():
    affected = {"package": {"ecosystem": "PyPI", "name": "x"},
                "ranges": [{"type": "GIT", "events": [{"introduced": "0"}]}]}
    assert not is_affected("PyPI", "1.0", affected)
    assert not is_affected("PyPI", "not a version!", _eco({"introduced": "0"}))


def test_no_fixed_event_means_every_later_version():
    affected = _eco({"introduced": "3.1"})
    assert is_affected("PyPI", "99.0", affected) and not is_affected("PyPI", "3.0.9", affected)


@pytest.mark.parametrize(("version", "expected"), [
    ("4.17.15", True), ("4.17.20", True), ("4.17.21", False), ("4.17.21-beta.1", True), ("5.0.0", False),
])
def test_npm_semver(version, expected):
    affected = {"package": {"ecosystem": "npm", "name": "lodash"},
                "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "4.17.21"}]}]}
    assert is_affected("npm", version, affected) is expected


def test_semver_precedence():
    order = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
             "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0"]
    parsed = [SemVer(v) for v in order]
    assert parsed == sorted(parsed)
    assert SemVer("1.0.0+build.5") == SemVer("1.0.0")
    with pytest.raises(ValueError):
        SemVer("1.0")


def test_unknown_ecosystem_has_no_ordering():
    assert parser_for("Go") is None
    affected = {"package": {"ecosystem": "Go", "name": "x"}, "versions": ["v1.0.0"],
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]}
    assert is_affected("Go", "v1.0.0", affected)      # the explicit list still matches
    assert not is_affected("Go", "v1.1.0", affected)  # an ECOSYSTEM range cannot be ordered
    assert in_range("1.0.0", [{"introduced": "0"}], SemVer)
    assert not in_range("1.0", [{"introduced": "0"}], SemVer)  # not SemVer: no match


def test_fixed_versions():
    assert fixed_versions(_eco({"introduced": "0"}, {"fixed": "1.2"}, {"introduced": "2"}, {"fixed": "2.1"})) == \
        ["1.2", "2.1"]


def test_cvss3_scores_and_severity():
    assert cvss3_base_score("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:N") == 8.1
    assert cvss3_base_score("CVSS:3.1/AV:A/AC:H/PR:H/UI:N/S:U/C:H/I:N/A:N") == 4.2
    assert cvss3_base_score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H") == 10.0
    assert cvss3_base_score("CVSS:3.0/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N") == 6.1
    assert cvss3_base_score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N") == 0.0
    assert cvss3_base_score("AV:N/AC:L/Au:N/C:P/I:P/A:P") is None
    rated = assess({"severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]}, {})
    assert rated == {"severity": "critical", "source": "cvss", "score": 9.8,
                     "vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}
    assert assess({"database_specific": {"severity": "MODERATE"}}, {})["severity"] == "medium"
    assert assess({}, {}) == {"severity": "high", "source": "unrated"}
