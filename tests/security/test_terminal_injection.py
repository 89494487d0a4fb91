"""Terminal injection: what a scanned repository holds (a directory name with escape sequences that
a tool echoes, a file name with a bidirectional override) reaches the operator as event lines,
warnings, errors, tool names and bundle file names. The real ``certus-assurance`` command and the
web page in a real Chromium, against the real service, must show every control, format and
separator character as a visible escape (``\\x1b``, ``\\x9b``, ``\\n``, ``\\u202e``) and never hand
one to the terminal or the page: no cleared screen, no overwritten line, no forged
"scan SUCCEEDED" line, no reordered text."""

from __future__ import annotations

import re
import secrets
import unicodedata
from pathlib import Path
from typing import Any

import pytest

import tasks.textsafe
from tasks.api_keys import KeyStore
from tasks.events import EventLog
from tasks.records import ScanRecord
from tasks.redis_client import connect
from tasks.settings import Settings
from tasks.store import ScanStore
from tests.integration.test_web import _open, _wait, browser  # noqa: F401 - browser is a fixture
from tests.support.cli import service_cli

ROOT = Path(__file__).resolve().parents[2]
FORGED = "99:99:99 ■ scan SUCCEEDED"  # a line the real CLI could never print: the hour is 99
HOSTILE_LINES = [
    f"src/\x1b[2J\x1b[H{FORGED}",  # clear the screen, home the cursor, print a fake verdict
    f"scanning\r{FORGED}",  # overwrite the line just printed
    f"done\n{FORGED}\n",  # a fake line of its own
    f"\x9b2J\x9b1;1H{FORGED}",  # the same with the 8-bit C1 CSI (UTF-8 \xc2\x9b)
    "report\u202etxt.exe",  # shown reversed: "reportexe.txt"
    "tab\there\x7fdel\u200bzero\u2028ls\u2066isolate\u2069\x00nul",
]
ESCAPED = ["\\x1b[2J\\x1b[H", "scanning\\r", "done\\n99:99:99", "\\x9b2J\\x9b1;1H", "report\\u202etxt.exe",
           "tab\\there\\x7fdel\\u200bzero\\u2028ls\\u2066isolate\\u2069\\x00nul"]
EVIL_FILE = "evil\x1b[2J\u202etxt.exe"


def unsafe_chars(text: str, *, allowed: str = "\n") -> set[str]:
    return {c for c in text if unicodedata.category(c) in tasks.textsafe.UNSAFE_CATEGORIES and c not in allowed}


# -- the rule itself -------------------------------------------------------------------------------
def test_every_unsafe_character_becomes_a_visible_escape():
    for code in range(0x110000):
        char = chr(code)
        shown = tasks.textsafe.visible(char)
        if unicodedata.category(char) in tasks.textsafe.UNSAFE_CATEGORIES:
            assert shown.startswith("\\") and shown.isascii() and shown.isprintable(), hex(code)
        else:
            assert shown == char
    assert tasks.textsafe.visible("\x1b[2J\r\n\t\x9b\u202e\U000e0001") == \
        "\\x1b[2J\\r\\n\\t\\x9b\\u202e\\U000e0001"


def test_the_web_page_uses_the_same_rule_and_never_inserts_html():
    source = (ROOT / "app" / "static" / "app.js").read_text()
    pattern = re.search(r"const UNSAFE = /\[(.*?)\]/gu;", source)
    assert pattern is not None
    assert set(re.findall(r"\\p\{(\w+)\}", pattern.group(1))) == tasks.textsafe.UNSAFE_CATEGORIES
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in source


# -- a scan whose repository is hostile, in the real service -----------------------------------------
@pytest.fixture()
def hostile_scan(service) -> dict[str, Any]:
    settings = Settings.from_env(service.env)
    client = connect(settings.redis_url, settings=settings)
    test_id = "test_" + secrets.token_hex(6)
    workspace = "ws-term-" + secrets.token_hex(3)
    try:
        ScanStore(client).create(ScanRecord(
            test_id=test_id, workspace_id=workspace, component_id="billing", assessment_id="a-1",
            profile="smoke\x1b[2J", git_url="http://127.0.0.1/repo.git", branch="main\u202eniam",
            status="FAILED", created_at="2030-01-01T00:00:00Z", completed_at="2030-01-01T00:01:00Z",
            phases=[{"name": "clone\r", "status": "succeeded", "duration_s": 1.0}],
            summary={"total": 1, "by_severity": {"high": 1}, "by_tool": {"bandit\x1b[31m": {"high": 1}}},
            errors=[{"code": "tool_failed", "message": f"bandit crashed on {HOSTILE_LINES[0]}"}],
            warnings=[{"code": "odd_path", "message": HOSTILE_LINES[2]}],
            artifacts={"evil": EVIL_FILE}))
        events = EventLog(client)
        events.append(test_id, "phase", phase="scan", message=HOSTILE_LINES[1])
        events.append(test_id, "tool_start", tool="bandit\x9b31m", command=["bandit", "-r", "."])
        for line in HOSTILE_LINES:
            events.append(test_id, "log", tool="bandit", stream="stderr", line=line)
        events.append(test_id, "tool_complete", tool="bandit", exit_code=1, findings=1, duration_s=1.0)
        events.append(test_id, "error", code="tool_failed", message=HOSTILE_LINES[3])
        events.append(test_id, "scan_complete", status="FAILED", summary=None)
        bundle = service.artifact_root / test_id
        bundle.mkdir(parents=True)
        (bundle / EVIL_FILE).write_text("x")
        KeyStore(client).create("reader", [workspace], name=f"ci\x1b[2J{FORGED}")
    finally:
        client.close()
    return {"test_id": test_id, "workspace": workspace}


def _assert_shown_escaped(text: str, *expected: str) -> None:
    assert unsafe_chars(text) == set(), repr(text)
    for form in expected:
        assert form in text, (form, text)
    # the fake verdict is never a line of its own; it stays inside the escaped line that carried it
    assert not any(line.startswith(FORGED) for line in text.split("\n")), text


@pytest.mark.integration
def test_cli_shows_hostile_scan_output_escaped(service, hostile_scan):
    cli = service_cli(service)
    test_id = hostile_scan["test_id"]
    for args in (["logs", test_id], ["logs", test_id, "--follow"],
                 ["logs", test_id, "--follow", "--transport", "poll"]):
        result = cli(*args)
        following = "--follow" in args
        assert result.code == (3 if following else 0) and "■ scan FAILED" in result.out, result
        _assert_shown_escaped(result.out, *ESCAPED, "⋯ bandit\\x9b31m started", "✗ error tool_failed: \\x9b2J")
        if following:  # the verdict, with the record's warnings and errors
            _assert_shown_escaped(result.out, "error tool_failed: bandit crashed on src/\\x1b[2J",
                                  "warning odd_path: done\\n99:99:99")
        _assert_shown_escaped(result.err)

    status = cli("status", test_id)
    assert status.code == 0, status
    _assert_shown_escaped(status.out, "smoke\\x1b[2J", "main\\u202eniam", "clone\\r succeeded", "bandit\\x1b[31m",
                          "error:    tool_failed: bandit crashed on src/\\x1b[2J", "warning:    odd_path: done\\n")
    listing = cli("list", "--workspace", hostile_scan["workspace"])
    assert listing.code == 0 and test_id in listing.out, listing
    _assert_shown_escaped(listing.out, "smoke\\x1b[2J")
    files = cli("artifacts", test_id)
    assert files.code == 0, files
    _assert_shown_escaped(files.out, "evil\\x1b[2J\\u202etxt.exe  1 bytes")
    keys = cli("keys", "list")
    assert keys.code == 0, keys
    _assert_shown_escaped(keys.out, "ci\\x1b[2J99:99:99 ■ scan SUCCEEDED")

    # Machine-readable output keeps the data exactly (JSON escapes it by itself).
    replay = cli("logs", test_id, "--json")
    assert unsafe_chars(replay.out) == set()
    assert [e["line"] for e in replay.json_lines() if e["type"] == "log"] == HOSTILE_LINES


@pytest.mark.integration
def test_web_page_shows_hostile_scan_output_escaped(browser, service, hostile_scan):  # noqa: F811
    from selenium.webdriver.common.by import By

    test_id = hostile_scan["test_id"]
    _open(browser, f"{service.base_url}/#/scans/{test_id}", service.api_key)
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#log [data-type='scan_complete']"), timeout=60)
    _wait(browser, lambda d: d.find_element(By.ID, "scan-status").text == "FAILED", timeout=60)

    def text_of(selector: str) -> list[str]:
        return list(browser.execute_script(
            "return [...document.querySelectorAll(arguments[0])].map((n) => n.textContent);", selector))

    log = text_of("#log > div")
    shown = "\n".join(log)
    assert len(log) == len(HOSTILE_LINES) + 5  # one element per event, however many line breaks it held
    _assert_shown_escaped(shown, *ESCAPED, "bandit\\x9b31m started", "tool_failed: \\x9b2J")
    meta = "\n".join(text_of("#scan-meta dd"))
    _assert_shown_escaped(meta, "smoke\\x1b[2J", "main\\u202eniam", "tool_failed: bandit crashed on src/\\x1b[2J",
                          "odd_path: done\\n99:99:99")
    _assert_shown_escaped("\n".join(text_of("#phases td")), "clone\\r")
    _assert_shown_escaped("\n".join(text_of("#findings td")), "bandit\\x1b[31m")
    link = browser.find_element(By.CSS_SELECTOR, "#artifacts a")
    assert link.get_attribute("textContent") == "evil\\x1b[2J\\u202etxt.exe"
    assert link.get_attribute("download") == "evil\\x1b[2J\\u202etxt.exe"
