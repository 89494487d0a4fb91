"""The web page's findings views in a real browser (Debian's headless Chromium, as in test_web.py)
against a real API (gunicorn, Redis) and its findings store (SQLite): a scan's findings grouped by
file, rule and severity with their sources, rule help links, new/unchanged badges and the fixed
list; the filter and the pages of the API's cursor; triage refused to a reader key and done with a
triager key, with the row and the history updated; the component view; hostile text shown as text;
the first page of a component of 10,000 findings, timed; and two real scans by the real worker.

Except in the last test, the scans are recorded as a worker leaves them: the findings in the store
(``FindingsStore``, the service's own database), the scan records and their last event in Redis,
and a SARIF report with rule help URIs and code snippets in the bundle."""

from __future__ import annotations

import json
import secrets
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import tasks.textsafe
from tasks.db import make_engine, upgrade
from tasks.events import EventLog
from tasks.findings import FindingInput, ScanInfo
from tasks.findings_store import FindingsStore
from tasks.records import ScanRecord
from tasks.redis_client import connect
from tasks.settings import Settings
from tasks.states import ScanStatus, Severity
from tasks.store import ScanStore
from tests.integration import test_web
from tests.integration.test_web import SCREENSHOTS, browser  # noqa: F401 - browser is a fixture
from tests.support.service import Service, base_env

pytestmark = pytest.mark.integration

WS, COMPONENT, BIG = "acme", "billing", "big"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SHELL_HELP = "https://bandit.readthedocs.io/en/latest/plugins/b602_subprocess_popen_with_shell_equals_true.html"
RUFF_HELP = "https://docs.astral.sh/ruff/rules/subprocess-popen-with-shell-equals-true/"
HOSTILE_MESSAGE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> report\u202etxt.exe'
HOSTILE_PATH = "src/<b>bold</b>\u202egnp.py"
HOSTILE_RULE = "B<i>9</i>\u200b"
BIG_COUNT = 10_000


def _input(fp: str, rule: str, severity: Severity, path: str, line: int, message: str, tool: str = "bandit",
           cwe: str | None = "CWE-78") -> FindingInput:
    return FindingInput(fingerprint=fp, tool=tool, rule_id=rule, severity=severity, path=path, line=line,
                        message=message, cwe=cwe)


SHELL = [_input("fp-shell", "B602", Severity.HIGH, "billing/export.py", 12,
                "subprocess call with shell=True identified"),
         _input("fp-shell", "S602", Severity.HIGH, "billing/export.py", 12, "`subprocess` call with `shell=True`",
                tool="ruff")]
YAML = _input("fp-yaml", "B506", Severity.MEDIUM, "billing/config.py", 3, "Use of unsafe yaml load")
PASSWORD = _input("fp-pass", "B105", Severity.LOW, "billing/settings.py", 7, "Possible hardcoded password: 'hunter2'",
                  cwe="CWE-259")
PICKLE = _input("fp-pickle", "B301", Severity.MEDIUM, "billing/export.py", 30, "Pickle can be unsafe", cwe="CWE-502")
TEMP = _input("fp-triage", "B108", Severity.MEDIUM, "billing/tmp.py", 5, "Probable insecure usage of temp file",
              cwe="CWE-377")
UTIL = [_input(f"fp-util{n}", "B110", Severity.LOW, "billing/util.py", n * 10, f"Try, Except, Pass detected ({n})",
               cwe="CWE-703") for n in range(1, 5)]
NEW_SHELL = _input("fp-new", "B602", Severity.HIGH, "billing/jobs.py", 8, "subprocess call with shell=True identified")
HOSTILE = _input("fp-hostile", HOSTILE_RULE, Severity.CRITICAL, HOSTILE_PATH, 1, HOSTILE_MESSAGE)

BASE_FINDINGS = [*SHELL, YAML, PASSWORD, PICKLE, TEMP, *UTIL]
HEAD_FINDINGS = [*SHELL, PASSWORD, PICKLE, TEMP, *UTIL, NEW_SHELL, HOSTILE]


@dataclass
class Site:
    service: Service
    store: FindingsStore
    base: str
    head: str
    big: str
    reader: str
    triager: str


def _by_severity(findings: list[FindingInput]) -> dict[str, int]:
    seen: dict[str, str] = {}
    for f in findings:
        seen.setdefault(f.fingerprint, f.severity)
    return {s.value: sum(1 for v in seen.values() if v == s.value) for s in Severity}


def _sarif(findings: list[FindingInput]) -> dict[str, Any]:
    """The bundle's SARIF of the head scan: help URIs (one of them hostile) and snippets, each result
    naming its logical finding as the worker's annotation does."""
    helps = {("bandit", "B602"): SHELL_HELP, ("ruff", "S602"): RUFF_HELP,
             ("bandit", "B105"): "javascript:window.__pwned=3"}
    runs = []
    for tool in ("bandit", "ruff"):
        mine = [f for f in findings if f.tool == tool]
        rules = [{"id": rule, **({"helpUri": helps[(tool, rule)]} if (tool, rule) in helps else {})}
                 for rule in sorted({f.rule_id for f in mine})]
        results = [{"ruleId": f.rule_id, "level": "error", "message": {"text": f.message},
                    "fingerprints": {"certusLogicalFinding/v1": f.fingerprint},
                    "properties": {"severity": f.severity.value},
                    "locations": [{"physicalLocation": {"artifactLocation": {"uri": f.path}, "region": {
                        "startLine": f.line,
                        "snippet": {"text": f"subprocess.call(cmd,\n    shell=True)  # {f.line}"}}}}]}
                   for f in mine]
        runs.append({"tool": {"driver": {"name": tool, "rules": rules}}, "results": results})
    return {"version": "2.1.0", "runs": runs}


def _write_scan(service: Service, test_id: str, component: str, created: datetime, summary: dict[str, Any],
                policy: dict[str, Any], artifacts: dict[str, str]) -> None:
    settings = Settings.from_env(service.env)
    client = connect(settings.redis_url, settings=settings)
    try:
        ScanStore(client).create(ScanRecord(
            test_id=test_id, workspace_id=WS, component_id=component, assessment_id="release-1",
            profile="standard", git_url="http://127.0.0.1/billing.git", branch="main",
            resolved_commit=secrets.token_hex(20), status=ScanStatus.SUCCEEDED,
            created_at=created.isoformat().replace("+00:00", "Z"),
            completed_at=(created + timedelta(minutes=2)).isoformat().replace("+00:00", "Z"),
            summary=summary, policy=policy, artifacts=artifacts))
        EventLog(client).append(test_id, "scan_complete", status="SUCCEEDED", summary=summary)
    finally:
        client.close()


def _record(site_store: FindingsStore, test_id: str, component: str, created: datetime,
            findings: list[FindingInput], baseline: str | None) -> dict[str, dict[str, int]]:
    result = site_store.record_scan(ScanInfo(
        test_id=test_id, workspace_id=WS, component_id=component, status=ScanStatus.SUCCEEDED, created_at=created,
        branch="main", commit=secrets.token_hex(20), baseline_test_id=baseline, on_baseline_branch=True), findings)
    return result.diff.counts()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("web-findings")
    env = base_env(tmp, redis_url.rsplit("/", 1)[0] + "/14")  # its own queue: not the session service's workers
    upgrade(env["CERTUS_ASSURANCE_DATABASE_URL"])  # before the API: the test's writes need the tables
    service = Service(env=env, workdir=tmp)
    store = FindingsStore(make_engine(env["CERTUS_ASSURANCE_DATABASE_URL"]))
    try:
        service.start_api()
        base, head, big = ("test_" + secrets.token_hex(6) for _ in range(3))
        _record(store, base, COMPONENT, T0, BASE_FINDINGS, None)
        diff = _record(store, head, COMPONENT, T0 + timedelta(days=1), HEAD_FINDINGS, base)
        _write_scan(service, base, COMPONENT, T0, {"total": 9, "by_severity": _by_severity(BASE_FINDINGS),
                                                   "by_tool": {"bandit": {"high": 1}}, "baseline": None, "diff": None},
                    {"passed": True, "thresholds": {}, "violations": []}, {})
        sarif = Path(service.artifact_root, head, "reports", "sast")
        sarif.mkdir(parents=True)
        (sarif / "bandit.sarif.json").write_text(json.dumps(_sarif(HEAD_FINDINGS)))
        _write_scan(service, head, COMPONENT, T0 + timedelta(days=1),
                    {"total": 10, "by_severity": _by_severity(HEAD_FINDINGS), "by_tool": {"bandit": {"high": 2}},
                     "baseline": {"test_id": base, "commit": "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d",
                                  "branch": "main"}, "diff": diff},
                    {"passed": False, "thresholds": {"high": 0}, "violations": [
                        {"severity": "high", "threshold": 0, "count": 1,
                         "message": "1 new high findings exceed the threshold of 0"}]},
                    {"sast_bandit": "reports/sast/bandit.sarif.json"})
        severities = [Severity.CRITICAL, *[Severity.HIGH] * 4, *[Severity.MEDIUM] * 15, *[Severity.LOW] * 30]
        many = [_input(f"big{n:05d}", f"B{600 + n % 40}", severities[n % len(severities)], f"src/mod{n % 500:03d}.py",
                       n % 300 + 1, f"finding number {n}") for n in range(BIG_COUNT)]
        _record(store, big, BIG, T0, many, None)
        _write_scan(service, big, BIG, T0, {"total": BIG_COUNT, "by_severity": _by_severity(many), "by_tool": {},
                                            "baseline": None, "diff": None},
                    {"passed": True, "thresholds": {}, "violations": []}, {})
        yield Site(service, store, base, head, big, reader=service.create_key("reader", [WS], name="dashboard"),
                   triager=service.create_key("triager", [WS], name="web-triager"))
    finally:
        store.close()
        service.stop()


# -- helpers ----------------------------------------------------------------------------------------
def wait(driver: Any, condition: Callable[[Any], Any], timeout: float = 180) -> Any:
    """test_web's wait for a condition in the browser."""
    return test_web._wait(driver, condition, timeout=timeout)  # type: ignore[no-untyped-call]


def open_page(driver: Any, url: str, api_key: str) -> None:
    """test_web's way of opening a page of the service with a key, as a person pasting it."""
    test_web._open(driver, url, api_key)


def _texts(driver: Any, selector: str) -> list[str]:
    return list(driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map((n) => n.textContent);", selector))


def _rows(driver: Any, scope: str = "#scan-findings") -> list[dict[str, Any]]:
    """The finding rows on the page: id, cells' text, group."""
    return list(driver.execute_script("""
        return [...document.querySelectorAll(arguments[0] + ' tr.finding')].map((tr) => ({
          id: Number(tr.dataset.findingId), state: tr.dataset.state,
          group: tr.closest('tbody').dataset.group,
          cells: [...tr.children].map((td) => td.textContent)}));""", scope))


def _by_message(rows: list[dict[str, Any]], text: str) -> dict[str, Any]:
    return next(r for r in rows if text in r["cells"][2])


def _wait_rows(driver: Any, predicate: Any, scope: str = "#scan-findings", timeout: float = 30) -> list[dict[str, Any]]:
    """Wait until the panel is idle and its rows satisfy ``predicate``."""
    def ready(d: Any) -> Any:
        busy = d.execute_script("const p = document.querySelector(arguments[0] + ' .findings-panel');"
                                "return !p || p.hasAttribute('aria-busy');", scope)
        if busy:
            return False
        rows = _rows(d, scope)
        return [rows] if predicate(rows) else False  # (a list holding no rows is still an answer)
    result: list[dict[str, Any]] = wait(driver, ready, timeout=timeout)[0]
    return result


def _select(driver: Any, scope: str, name: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.CSS_SELECTOR, f"{scope} .fp-filter [name='{name}']")).select_by_value(value)


def _api_finding(site: Site, fingerprint: str) -> dict[str, Any]:
    page = site.service.http.get(site.service.url("/v1/findings"), params={
        "workspace_id": WS, "component_id": COMPONENT, "limit": "500"}, timeout=30).json()
    found: dict[str, Any] = next(f for f in page["items"] if f["fingerprint"] == fingerprint)
    return found


def _unsafe(text: str) -> set[str]:
    """Characters that would not be shown as themselves (line breaks are the page's own layout)."""
    return {c for c in text if unicodedata.category(c) in tasks.textsafe.UNSAFE_CATEGORIES and c != "\n"}


# -- the scan's findings ----------------------------------------------------------------------------
def test_a_scans_findings_grouped_with_sources_badges_and_help_links(browser: Any, site: Site) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    open_page(browser, f"{site.service.base_url}/#/scans/{site.head}", site.reader)
    rows = _wait_rows(browser, lambda rs: len(rs) == 10)
    # Grouped by file (the default), most severe group first; every finding of the component that is
    # not fixed (the yaml finding the head scan no longer has was marked fixed by it).
    groups = _texts(browser, "#scan-findings tbody.fgroup .group-name")
    assert groups[0] == "src/<b>bold</b>\\u202egnp.py" and set(groups) == {
        "src/<b>bold</b>\\u202egnp.py", "billing/export.py", "billing/jobs.py", "billing/tmp.py",
        "billing/settings.py", "billing/util.py"}
    assert _texts(browser, "#scan-findings tbody[data-group='billing/util.py'] .group-count") == [" (4)"]
    assert not any("yaml" in r["cells"][2] for r in rows)

    shell = next(r for r in rows if r["cells"][1] == "billing/export.py:12")
    severity, location, _message, sources, state, badge, _actions = shell["cells"]
    assert (severity, location, state, badge) == ("high", "billing/export.py:12", "open", "unchanged")
    assert sources == "bandit B602ruff S602"  # both tools that reported it, one per line
    new = next(r for r in rows if r["cells"][1] == "billing/jobs.py:8")
    assert new["cells"][5] == "new"
    assert _by_message(rows, "Pickle")["cells"][5] == "unchanged"

    # The comparison's line and the fixed list (from the diff endpoint).
    diff = browser.find_element(By.CSS_SELECTOR, "#scan-findings .fp-diff").text
    assert f"Compared with the baseline {site.base} (main @ 1a2b3c4)" in diff
    assert "2 new (1 critical, 1 high)" in diff and "1 fixed (1 medium)" in diff and "8 unchanged" in diff
    fixed = browser.find_element(By.CSS_SELECTOR, "#scan-findings .fp-fixed")
    fixed.find_element(By.TAG_NAME, "summary").click()
    assert "Fixed since the baseline: 1" in fixed.text and "billing/config.py:3" in fixed.text

    # Rule help links once the SARIF report is read: an https one is a link, a javascript: one is not.
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f"#scan-findings a[href='{SHELL_HELP}']"), timeout=30)
    assert browser.find_elements(By.CSS_SELECTOR, f"#scan-findings a[href='{RUFF_HELP}']")
    assert not browser.execute_script("return [...document.querySelectorAll('a')].some((a) => "
                                      "!/^(https?:|#|\\/)/.test(a.getAttribute('href') || '#'));")
    password = next(r for r in _rows(browser) if r["cells"][1] == "billing/settings.py:7")
    assert password["cells"][3] == "bandit B105"

    # Details: the finding's data and the code snippet the SARIF carries.
    row = browser.find_element(By.CSS_SELECTOR, f"#scan-findings tr.finding[data-finding-id='{shell['id']}']")
    row.find_element(By.CSS_SELECTOR, "button.fp-toggle").click()
    detail = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR,
                                                     f"tr.finding-detail[data-finding-id='{shell['id']}']"))
    assert "fp-shell" in detail.text and "CWE-78" in detail.text and site.base in detail.text
    assert detail.find_element(By.CSS_SELECTOR, "pre.snippet").text == "subprocess.call(cmd,\n    shell=True)  # 12"
    toggle = browser.find_element(By.CSS_SELECTOR, f"tr.finding[data-finding-id='{shell['id']}'] button.fp-toggle")
    assert toggle.get_attribute("aria-expanded") == "true" and browser.switch_to.active_element == toggle

    # By rule, then by severity: the same page regrouped without another request.
    _select(browser, "#scan-findings", "group", "rule")
    assert set(_texts(browser, "#scan-findings .group-name")) == {
        "bandit B602", "bandit B301", "bandit B108", "bandit B105", "bandit B110", f"bandit {HOSTILE_RULE[:-1]}\\u200b"}
    _select(browser, "#scan-findings", "group", "severity")
    assert _texts(browser, "#scan-findings .group-name") == ["critical", "high", "medium", "low"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "scan-findings.png"))


def test_the_filter_narrows_through_the_api(browser: Any, site: Site) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    open_page(browser, f"{site.service.base_url}/#/scans/{site.head}", site.reader)
    _wait_rows(browser, lambda rs: len(rs) == 10)
    search = browser.find_element(By.CSS_SELECTOR, "#scan-findings .fp-filter input[name='q']")
    search.send_keys("SHELL=true")  # case-insensitive, as the API searches
    rows = _wait_rows(browser, lambda rs: len(rs) == 2)
    assert {r["cells"][1] for r in rows} == {"billing/export.py:12", "billing/jobs.py:8"}
    search.clear()
    search.send_keys("\n")
    _wait_rows(browser, lambda rs: len(rs) == 10)

    _select(browser, "#scan-findings", "severity", "medium")
    rows = _wait_rows(browser, lambda rs: len(rs) == 2)
    assert {r["cells"][0] for r in rows} == {"medium"}
    _select(browser, "#scan-findings", "state", "fixed")
    rows = _wait_rows(browser, lambda rs: len(rs) == 1)
    assert rows[0]["cells"][1] == "billing/config.py:3" and rows[0]["cells"][4] == "fixed"
    assert rows[0]["cells"][5] == "fixed"  # the baseline saw it, this scan did not
    _select(browser, "#scan-findings", "severity", "")
    _select(browser, "#scan-findings", "state", "open,false_positive,accepted_risk")
    browser.find_element(By.CSS_SELECTOR, "#scan-findings .fp-filter input[name='new_only']").click()
    rows = _wait_rows(browser, lambda rs: len(rs) == 2)
    assert {r["cells"][5] for r in rows} == {"new"}
    path = browser.find_element(By.CSS_SELECTOR, "#scan-findings .fp-filter input[name='path']")
    path.send_keys("billing/\n")
    rows = _wait_rows(browser, lambda rs: len(rs) == 1)
    assert rows[0]["cells"][1] == "billing/jobs.py:8"
    path.clear()
    path.send_keys("nowhere/\n")
    _wait_rows(browser, lambda rs: rs == [])
    assert browser.find_element(By.CSS_SELECTOR, "#scan-findings .fp-empty").is_displayed()


# -- triage -------------------------------------------------------------------------------------------
def _triage(driver: Any, finding_id: int, target: str, **fields: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f"tr.finding[data-finding-id='{finding_id}'] "
                                         f"button.triage[data-target-state='{target}']").click()
    form = wait(driver, lambda d: d.find_element(
        By.CSS_SELECTOR, f"tr.finding-detail[data-finding-id='{finding_id}'] form.triage-form"))
    assert driver.switch_to.active_element.get_attribute("name") == "reason"  # the keyboard lands in the form
    for name, value in fields.items():
        field = form.find_element(By.NAME, name)
        if field.get_attribute("type") == "date":  # a date field's typing depends on the locale
            driver.execute_script("arguments[0].value = arguments[1];", field, value)
        else:
            field.send_keys(value)
    form.find_element(By.CSS_SELECTOR, "button[type='submit']").click()


def test_triage_is_refused_to_a_reader_and_done_by_a_triager(browser: Any, site: Site) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    finding = _api_finding(site, "fp-triage")
    expires = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    open_page(browser, f"{site.service.base_url}/#/scans/{site.head}", site.reader)
    _wait_rows(browser, lambda rs: len(rs) == 10)
    # A reader's key: the page cannot know its role before asking, so it offers the buttons and
    # explains the refusal, then hides them for this key.
    _triage(browser, finding["id"], "accepted_risk", reason="only the admin console", owner="alice@example.com",
            expires=expires)
    notice = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#scan-findings .fp-notice"))
    wait(browser, lambda d: notice.is_displayed())
    assert "may not triage" in notice.text and "reader" in notice.text and "triager or admin" in notice.text
    assert browser.switch_to.active_element == notice
    assert not browser.find_elements(By.CSS_SELECTOR, "#scan-findings button.triage")
    assert _api_finding(site, "fp-triage")["state"] == "open"

    # Another key in the header's field: the buttons are back, and a triager's change is made.
    key = browser.find_element(By.ID, "api-key")
    key.clear()
    key.send_keys(site.triager, Keys.TAB)
    _wait_rows(browser, lambda rs: len(rs) == 10)
    assert browser.find_elements(By.CSS_SELECTOR, "#scan-findings button.triage")
    _triage(browser, finding["id"], "accepted_risk", reason="only the admin console\nfix in SEC-142",
            owner="alice@example.com", expires=expires)
    selector = f"tr.finding-detail[data-finding-id='{finding['id']}'] .row-message"
    wait(browser, lambda d: any("is now accepted risk" in t for t in _texts(d, selector)))
    message = browser.find_element(By.CSS_SELECTOR, selector)
    assert f"until {expires}T00:00:00Z, owner alice@example.com" in message.text
    assert browser.switch_to.active_element == message
    row = next(r for r in _rows(browser) if r["id"] == finding["id"])
    assert row["state"] == "accepted_risk" and row["cells"][4] == f"accepted risk until {expires}"
    detail = browser.find_element(By.CSS_SELECTOR, f"tr.finding-detail[data-finding-id='{finding['id']}']")
    assert "only the admin console\nfix in SEC-142" in detail.text  # a reason keeps its lines
    history = _texts(browser, f"tr.finding-detail[data-finding-id='{finding['id']}'] ol.history li")
    assert len(history) == 1 and "  open → accepted risk  by web-triager (key " in history[0]
    stored = _api_finding(site, "fp-triage")
    assert stored["state"] == "accepted_risk" and stored["triage_owner"] == "alice@example.com"

    # Reopen it: the row and the history follow.
    _triage(browser, finding["id"], "open", reason="fixed upstream instead")
    wait(browser, lambda d: any("is now open" in t for t in _texts(d, selector)))
    history = _texts(browser, f"tr.finding-detail[data-finding-id='{finding['id']}'] ol.history li")
    assert [h.split("  ")[1] for h in history] == ["open → accepted risk", "accepted risk → open"]
    assert "fixed upstream instead" in history[1]
    assert _api_finding(site, "fp-triage")["state"] == "open"

    # A rule the API enforces (an expiry in the past) comes back as the form's own error.
    browser.find_element(By.CSS_SELECTOR, f"tr.finding[data-finding-id='{finding['id']}'] "
                                          "button.triage[data-target-state='false_positive']").click()
    form = browser.find_element(By.CSS_SELECTOR,
                                f"tr.finding-detail[data-finding-id='{finding['id']}'] form.triage-form")
    form.find_element(By.NAME, "reason").send_keys("test double")
    browser.execute_script("const f = arguments[0].elements.expires; f.removeAttribute('min'); "
                           "f.value = '2001-01-01';", form)
    form.find_element(By.CSS_SELECTOR, "button[type='submit']").click()
    error = wait(browser, lambda d: form.find_element(By.CSS_SELECTOR, ".form-error"))
    wait(browser, lambda d: error.is_displayed())
    assert "422 triage_invalid" in error.text and "future" in error.text
    form.find_element(By.NAME, "reason").send_keys(Keys.ESCAPE)  # Escape closes the form
    wait(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, "form.triage-form"))
    assert _api_finding(site, "fp-triage")["state"] == "open"


# -- hostile text -------------------------------------------------------------------------------------
def test_hostile_finding_text_is_shown_as_text(browser: Any, site: Site) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    open_page(browser, f"{site.service.base_url}/#/scans/{site.head}", site.service.api_key)
    rows = _wait_rows(browser, lambda rs: len(rs) == 10)
    hostile = next(r for r in rows if r["cells"][0] == "critical")
    assert hostile["cells"][1] == "src/<b>bold</b>\\u202egnp.py:1"
    assert hostile["cells"][2] == HOSTILE_MESSAGE.replace("\u202e", "\\u202e")
    assert hostile["cells"][3] == "bandit B<i>9</i>\\u200b"
    browser.find_element(By.CSS_SELECTOR, f"tr.finding[data-finding-id='{hostile['id']}'] button.fp-toggle").click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f"tr.finding-detail[data-finding-id='{hostile['id']}']"))
    panel = "\n".join(_texts(browser, "#scan-findings"))
    assert _unsafe(panel) == set() and "<script>window.__pwned=2</script>" in panel
    # Nothing of it became markup: no element it names exists, nothing ran.
    assert not browser.find_elements(By.CSS_SELECTOR, "#scan-findings img, #scan-findings script, "
                                                      "#scan-findings b, #scan-findings i")
    assert browser.execute_script("return window.__pwned === undefined;")
    # The SARIF's own text in the flat list is text too.
    wait(browser, lambda d: "results from" in d.find_element(By.ID, "sarif-note").text, timeout=30)
    assert not browser.find_elements(By.CSS_SELECTOR, "#sarif img, #sarif script")
    assert _unsafe("\n".join(_texts(browser, "#sarif td"))) == set()


# -- the component view -------------------------------------------------------------------------------
def test_component_view_lists_scans_policies_open_findings_and_a_trend(browser: Any, site: Site) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    open_page(browser, f"{site.service.base_url}/#/scans/{site.head}", site.reader)
    link = wait(browser, lambda d: d.find_element(By.ID, "scan-component-link"))
    wait(browser, lambda d: link.text == f"{WS} / {COMPONENT}")
    link.click()
    wait(browser, lambda d: d.current_url.endswith(f"#/components/{WS}/{COMPONENT}"))
    rows = wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#component-scans tbody tr")) == 2
                 and d.find_elements(By.CSS_SELECTOR, "#component-scans tbody tr"))
    head, base = ([c.text for c in r.find_elements(By.TAG_NAME, "td")] for r in rows)  # newest first
    assert head[:6] == [site.head, "SUCCEEDED", "failed (1 rule)", head[3], "2", "1"]
    assert head[3].startswith("main @ ") and head[6:10] == ["1", "2", "2", "5"]
    assert base[:3] == [site.base, "SUCCEEDED", "passed"] and base[4:6] == ["", ""]
    bars = browser.find_elements(By.CSS_SELECTOR, "#component-trend svg g")
    assert [b.get_attribute("data-test-id") for b in bars] == [site.base, site.head]  # oldest on the left

    # Open findings now, by severity, as the API counts them.
    def counts(d: Any) -> Any:
        cells = d.find_elements(By.CSS_SELECTOR, "#component-open tbody td")
        texts = [c.text for c in cells]
        return texts if len(texts) == 5 and "…" not in texts else False
    shown = wait(browser, counts)
    expected = []
    for severity in ("critical", "high", "medium", "low", "info"):
        page = site.service.http.get(site.service.url("/v1/findings"), params={
            "workspace_id": WS, "component_id": COMPONENT, "state": "open", "severity": severity}, timeout=30).json()
        expected.append(str(len(page["items"])))
    assert shown == expected and shown[:2] == ["1", "2"]
    # A count opens the list of those findings.
    browser.find_element(By.CSS_SELECTOR, "#component-open td[data-severity='high'] button").click()
    rows2 = _wait_rows(browser, lambda rs: len(rs) == 2 and all(r["cells"][0] == "high" for r in rs),
                       scope="#component-findings")
    assert all(r["cells"][4] == "open" for r in rows2)
    browser.save_screenshot(str(SCREENSHOTS / "component-view.png"))

    # The scan list links to it too.
    browser.get(f"{site.service.base_url}/#/")
    cell = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR,
                                                   f"#scans tr[data-test-id='{site.head}'] td:nth-child(3) a"))
    assert cell.get_attribute("href").endswith(f"#/components/{WS}/{COMPONENT}")


# -- 10,000 findings ---------------------------------------------------------------------------------
def test_ten_thousand_findings_render_a_page_at_a_time(browser: Any, site: Site) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    open_page(browser, f"{site.service.base_url}/#/new", site.reader)
    wait(browser, lambda d: d.find_element(By.ID, "submit-form").is_displayed())
    marks = "return performance.getEntriesByName('certus:findings-first-page').map((m) => m.startTime);"
    timings = []
    for _ in range(3):
        before = len(browser.execute_script(marks))
        start = browser.execute_script("const t = performance.now(); location.hash = arguments[0]; return t;",
                                       f"#/scans/{site.big}")
        rendered = wait(browser, lambda d: len(d.execute_script(marks)) > before and d.execute_script(marks))
        assert len(_wait_rows(browser, lambda rs: len(rs) == 100)) == 100
        timings.append((rendered[-1] - start) / 1000)
        browser.execute_script("location.hash = '#/new';")
        wait(browser, lambda d: d.find_element(By.ID, "submit-form").is_displayed())
    print(f"first render of a component of {BIG_COUNT} findings: {', '.join(f'{t:.3f}' for t in timings)} s")
    assert min(timings) <= 1.0, timings

    browser.execute_script("location.hash = arguments[0];", f"#/scans/{site.big}")
    first = _wait_rows(browser, lambda rs: len(rs) == 100)
    assert [r["cells"][0] for r in first[:1]] == ["critical"]
    caption = browser.find_element(By.CSS_SELECTOR, "#scan-findings .fp-caption")
    assert caption.text.startswith("Findings 1–100 (more")
    assert browser.find_element(By.CSS_SELECTOR, "#scan-findings .fp-prev").get_attribute("disabled")
    browser.find_element(By.CSS_SELECTOR, "#scan-findings .fp-next").click()
    second = _wait_rows(browser, lambda rs: len(rs) == 100 and rs[0]["id"] != first[0]["id"])
    assert not {r["id"] for r in first} & {r["id"] for r in second}
    assert caption.text.startswith("Findings 101–200")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#scan-findings tr.finding")) == 100  # one page in the DOM
    browser.find_element(By.CSS_SELECTOR, "#scan-findings .fp-prev").click()
    back = _wait_rows(browser, lambda rs: rs[0]["id"] == first[0]["id"])
    assert [r["id"] for r in back] == [r["id"] for r in first]
    _select(browser, "#scan-findings", "limit", "200")
    _wait_rows(browser, lambda rs: len(rs) == 200)


# -- a real scan --------------------------------------------------------------------------------------
def test_real_scans_compared_on_the_page(browser: Any, service: Service,  # noqa: F811
                                        vulnerable_repo: dict[str, str]) -> None:
    """Two real scans by the real worker (bandit on the fixture repository: main, then the feature
    branch that adds one os.system call): the page shows the worker's comparison and help links."""
    from selenium.webdriver.common.by import By

    workspace = "ws-webf-" + secrets.token_hex(3)
    ids = []
    for branch in ("main", "feature"):
        answer = service.submit(git_url=vulnerable_repo["url"], profile="smoke", workspace_id=workspace,
                                component_id="billing", branch=branch)
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["test_id"])
        assert service.wait_done(ids[-1])["status"] == "SUCCEEDED"
    record = service.status(ids[1])
    assert record["summary"]["baseline"]["test_id"] == ids[0]

    open_page(browser, f"{service.base_url}/#/scans/{ids[1]}", service.api_key)
    total = record["summary"]["total"]
    rows = _wait_rows(browser, lambda rs: len(rs) == total, timeout=60)
    new = [r for r in rows if r["cells"][5] == "new"]
    assert [r["cells"][1] for r in new] == ["extra.py:3"] and new[0]["cells"][3] == "bandit B605"
    assert {r["cells"][5] for r in rows if r not in new} == {"unchanged"}
    diff = browser.find_element(By.CSS_SELECTOR, "#scan-findings .fp-diff").text
    assert f"Compared with the baseline {ids[0]}" in diff and "1 new (1 high)" in diff
    wait(browser, lambda d: d.find_elements(
        By.CSS_SELECTOR, "#scan-findings tr.finding a[href^='https://bandit.readthedocs.io/']"), timeout=30)
