"""The CLI's findings pieces without a service: the new/fixed line a scan's summary gives (a summary
recorded as the worker writes it), the expiry flag, and outside text made safe where it is printed."""

from __future__ import annotations

from typing import Any

import pytest

from cli.client import CliError
from cli.main import build_parser, diff_line, parse_expiry, print_finding, print_record, print_verdict
from cli.progress import format_diff

# A finished scan's summary with its comparison, as the worker records it (summary.baseline and
# summary.diff, counts by severity).
SUMMARY: dict[str, Any] = {
    "total": 247, "by_severity": {"high": 3, "medium": 40, "low": 204},
    "by_tool": {"bandit": {"high": 2, "medium": 30, "low": 200}, "ruff": {"high": 1, "medium": 10, "low": 4}},
    "baseline": {"test_id": "test_0a1b2c3d4e5f", "commit": "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d",
                 "branch": "main"},
    "diff": {"new": {"critical": 0, "high": 1, "medium": 0, "low": 1, "info": 0},
             "unchanged": {"critical": 0, "high": 2, "medium": 40, "low": 198, "info": 0},
             "fixed": {"critical": 0, "high": 1, "medium": 2, "low": 2, "info": 0}},
}
RECORD: dict[str, Any] = {"test_id": "test_3f9c2a1b7d4e", "status": "SUCCEEDED", "workspace_id": "acme",
                          "component_id": "billing", "summary": SUMMARY,
                          "policy": {"passed": True, "thresholds": {"high": 5}, "violations": []}}
LINE = "2 new (1 high, 1 low), 5 fixed, 240 unchanged vs test_0a1b2c3d4e5f (main @ 1a2b3c4)"


def test_the_new_and_fixed_line_of_a_recorded_summary():
    assert format_diff(SUMMARY["diff"], SUMMARY["baseline"]) == LINE
    assert diff_line(RECORD) == LINE
    assert format_diff({"new": {"high": 0}, "fixed": {}, "unchanged": {"low": 3}}, SUMMARY["baseline"]) == \
        "0 new, 0 fixed, 3 unchanged vs test_0a1b2c3d4e5f (main @ 1a2b3c4)"
    updated = {**SUMMARY["diff"], "updated": {"critical": 1}}
    assert format_diff(updated, {"test_id": "test_0a1b2c3d4e5f", "commit": "1a2b3c4d"}) == \
        "2 new (1 high, 1 low), 1 updated, 5 fixed, 240 unchanged vs test_0a1b2c3d4e5f (1a2b3c4)"
    assert format_diff({"new": {"medium": 4}}, None) == "4 new (4 medium), 0 fixed, 0 unchanged " \
                                                        "(no baseline: every finding is new)"
    # no comparison in the summary (an older service, a scan that was not compared): no line
    assert format_diff(None) is None and diff_line({"summary": {"total": 1}}) is None
    assert diff_line({"summary": None}) is None


def test_status_and_the_verdict_show_the_line(capsys):
    print_record(RECORD)
    assert f"  baseline:  {LINE}\n" in capsys.readouterr().out
    print_verdict(RECORD, 0)
    out = capsys.readouterr().out
    assert out.splitlines()[0] == LINE and out.rstrip().endswith("test_3f9c2a1b7d4e: SUCCEEDED (exit 0)")
    print_verdict({**RECORD, "summary": {"total": 0}}, 0)
    assert "new" not in capsys.readouterr().out


def test_outside_text_is_escaped_where_it_is_printed(capsys):
    hostile = {**SUMMARY, "baseline": {"test_id": "test_\x1b[2Jx", "branch": "ma\u202ein", "commit": "\x9b31m"}}
    line = format_diff(hostile["diff"], hostile["baseline"])
    assert line is not None and "\x1b" not in line and "\u202e" not in line and "\x9b" not in line
    assert "test_\\x1b[2Jx" in line and "ma\\u202ein" in line
    print_finding({"id": 7, "severity": "high", "state": "accepted_risk", "effective_state": "open",
                   "expired": True, "path": "a\rb.py", "line": 3, "tool": "bandit", "rule_id": "B602",
                   "message": "\x1b]0;owned\x07", "sources": [{"tool": "bandit", "rule_id": "B602"}],
                   "triage_reason": "ok\nfine", "workspace_id": "acme", "component_id": "billing"})
    out = capsys.readouterr().out
    assert "open (lapsed accepted_risk)" in out and "a\\rb.py:3" in out and "\\x1b]0;owned\\x07" in out
    assert "ok\\nfine" in out and "\x1b" not in out and "\r" not in out


@pytest.mark.parametrize(("given", "sent"), [
    ("2027-01-31", "2027-01-31T00:00:00Z"),
    ("2027-01-31T08:30:00Z", "2027-01-31T08:30:00Z"),
    ("2027-01-31T08:30:00+02:00", "2027-01-31T08:30:00+02:00"),
    ("2027-01-31T08:30", "2027-01-31T08:30:00Z"),  # no zone: UTC
])
def test_expiry_flag(given, sent):
    assert parse_expiry(given) == sent


@pytest.mark.parametrize("given", ["31/01/2027", "tomorrow", "2027-13-01", ""])
def test_an_expiry_that_is_no_time_is_a_usage_error(given):
    with pytest.raises(CliError) as refused:
        parse_expiry(given)
    assert refused.value.exit_code == 2


def test_the_new_commands_parse():
    parser = build_parser()
    args = parser.parse_args(["findings", "--workspace", "acme", "--component", "billing", "--state", "open",
                              "--state", "accepted_risk,false_positive", "--severity", "high", "--json"])
    assert args.func.__name__ == "cmd_findings" and args.json and args.state == ["open", "accepted_risk,false_positive"]
    args = parser.parse_args(["triage", "42", "--state", "accepted_risk", "--reason", "r", "--owner", "o",
                              "--expires", "2027-01-31"])
    assert (args.finding_id, args.state, args.expires) == (42, "accepted_risk", "2027-01-31")
    args = parser.parse_args(["diff", "test_3f9c2a1b7d4e", "--against", "test_0a1b2c3d4e5f"])
    assert args.against == "test_0a1b2c3d4e5f" and not args.unchanged
    with pytest.raises(SystemExit):
        parser.parse_args(["triage", "42", "--state", "fixed"])  # fixed is the scans' to set
    assert parser.parse_args(["keys", "create", "--role", "triager", "--workspace", "acme"]).role == "triager"
