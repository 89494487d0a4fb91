"""A scanner's report is trusted only when the tool exited as expected and wrote valid JSON: a crash
must never read as "no findings"."""

import pytest

from workers.scanners.base import ToolFailed, read_json_report
from workers.toolrun import ProcessResult


def result(code):
    return ProcessResult(argv=["tool"], exit_code=code, duration_s=0.1, stderr_tail="boom")


def test_valid_report_is_read(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{"results": [1]}')
    assert read_json_report("t", path, result(1), ok_exit=(0, 1)) == {"results": [1]}


def test_empty_report_means_what_the_tool_says(tmp_path):
    path = tmp_path / "r.json"
    path.write_text("")
    assert read_json_report("t", path, result(0), empty=[]) == []
    with pytest.raises(ToolFailed, match="unreadable"):
        read_json_report("t", path, result(0))


@pytest.mark.parametrize("code", [2, -9, None])
def test_crash_exit_codes_fail_even_with_a_report(tmp_path, code):
    path = tmp_path / "r.json"
    path.write_text("[]")
    with pytest.raises(ToolFailed, match="boom"):
        read_json_report("t", path, result(code), ok_exit=(0, 1))


def test_missing_or_garbled_report_fails(tmp_path):
    with pytest.raises(ToolFailed, match="without a report"):
        read_json_report("t", tmp_path / "absent.json", result(0))
    garbled = tmp_path / "g.json"
    garbled.write_text("{not json")
    with pytest.raises(ToolFailed, match="unreadable"):
        read_json_report("t", garbled, result(0))
