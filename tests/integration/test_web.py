"""The web page in a real browser: Debian's headless Chromium driven by Selenium and chromedriver.
It submits a scan through the form, watches the live log fill in, checks the findings table and the
scan list, and writes a screenshot to var/screenshots/."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1100")


@pytest.fixture()
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    binary = shutil.which("chromium") or "/usr/bin/chromium"
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    driver = webdriver.Chrome(service=DriverService(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, condition, timeout=180):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition)


def _open(driver, url: str, api_key: str) -> None:
    """Open a page of the service as a signed-in user: the page keeps the key in sessionStorage
    (per origin), as a person pasting it into the key field does."""
    origin = "/".join(url.split("/")[:3])
    driver.get(origin + "/health")  # a page of the same origin that opens no stream
    driver.execute_script("sessionStorage.setItem('certus-api-key', arguments[0]);", api_key)
    driver.get(url)


def test_submit_watch_and_read_findings(browser, service, vulnerable_repo):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _open(browser, service.base_url + "/#/new", service.api_key)
    form = _wait(browser, lambda d: d.find_element(By.ID, "submit-form"))
    for name, value in {"workspace_id": "ws-web", "component_id": "billing", "assessment_id": "web-1",
                        "git_url": vulnerable_repo["url"], "branch": "main"}.items():
        form.find_element(By.NAME, name).send_keys(value)
    Select(form.find_element(By.NAME, "profile")).select_by_visible_text("smoke")
    form.find_element(By.ID, "submit-button").click()

    _wait(browser, lambda d: re.search(r"#/scans/test_[0-9a-f]{12}$", d.current_url))
    test_id = browser.current_url.rsplit("/", 1)[1]
    assert browser.find_element(By.ID, "scan-id").text == test_id

    # The live log fills in: phases first, then the tool's lines, and scan_complete last.
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#log [data-type='phase']"))
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#log [data-type='scan_complete']"))
    types = [e.get_attribute("data-type") for e in browser.find_elements(By.CSS_SELECTOR, "#log > div")]
    assert types[-1] == "scan_complete" and types.count("scan_complete") == 1
    assert types.index("tool_start") < types.index("log") < types.index("tool_complete")
    assert "scan SUCCEEDED" in browser.find_element(By.CSS_SELECTOR, "#log [data-type='scan_complete']").text
    events = service.http.get(service.url(f"/v1/security-scans/{test_id}/events?limit=5000"), timeout=10).json()
    assert len(types) == len(events["events"])  # every event exactly once

    # Findings by tool and severity, the phases with durations, the policy verdict.
    row = _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#findings tr[data-tool='bandit']"))
    cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
    record = service.status(test_id)
    expected = record["summary"]["by_tool"]["bandit"]
    assert cells[0] == "bandit" and int(cells[2]) == expected.get("high", 0) >= 1
    assert int(cells[6]) == sum(expected.values())
    _wait(browser, lambda d: d.find_element(By.ID, "scan-status").text == "SUCCEEDED")
    phases = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#phases tbody tr")]
    assert [p.split()[0] for p in phases] == [p["name"] for p in record["phases"]]
    assert all(re.search(r"\d+\.\d\d s$", p) for p in phases)
    assert browser.find_element(By.ID, "policy").text.startswith("passed")
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#artifacts a")]
    assert any(h.endswith(f"/v1/security-scans/{test_id}/artifacts/reports/sast/bandit.sarif.json") for h in links)
    assert browser.find_element(By.ID, "upload-button").is_enabled()
    # SARIF details come through the artifacts endpoint, when this build serves it.
    probe = service.http.get(service.url(f"/v1/security-scans/{test_id}/artifacts"), timeout=10)
    if probe.status_code != 404 or probe.json()["error"]["code"] != "not_found":
        _wait(browser, lambda d: "results from" in d.find_element(By.ID, "sarif-note").text)
        rules = [r.find_elements(By.TAG_NAME, "td")[2].text
                 for r in browser.find_elements(By.CSS_SELECTOR, "#sarif tbody tr")]
        assert {"B602", "B301", "B105"} <= set(rules)
    else:
        _wait(browser, lambda d: "artifacts endpoint" in d.find_element(By.ID, "sarif-note").text)

    # The upload button asks for publication and shows the answer (the upload-request endpoint's
    # status, or its error envelope when this build has no such endpoint).
    browser.find_element(By.ID, "upload-button").click()
    _wait(browser, lambda d: d.find_element(By.ID, "upload-status").text != "", timeout=30)
    upload_text = browser.find_element(By.ID, "upload-status").text
    probe = service.http.post(service.url(f"/v1/security-scans/{test_id}/upload-request"),
                              json={"tier": "basic"}, timeout=10)
    if probe.status_code == 404 and probe.json()["error"]["code"] == "not_found":
        assert "404 not_found" in upload_text
    else:
        assert upload_text.startswith("upload: ")

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / "scan-page.png"
    browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The list shows it with its status and counts.
    browser.get(service.base_url + "/#/")
    row = _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, f"#scans tr[data-test-id='{test_id}']"))
    assert "SUCCEEDED" in row.text and "ws-web / billing" in row.text
    browser.save_screenshot(str(SCREENSHOTS / "scan-list.png"))


def test_page_is_self_contained(service):
    page = service.http.get(service.url("/"), timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assets = re.findall(r'(?:src|href)="([^"#]+)"', page.text)
    # nothing from a CDN: only this origin's paths (and an inline empty icon)
    assert assets and all((a.startswith("/") and not a.startswith("//")) or a == "data:," for a in assets)
    for asset in assets:
        if asset.startswith("/static/"):
            assert service.http.get(service.url(asset), timeout=10).status_code == 200


def test_live_log_resumes_after_a_dropped_connection(browser, service, vulnerable_repo):
    from selenium.webdriver.common.by import By

    from tests.support.cutproxy import CuttingProxy

    test_id = service.submit(git_url=vulnerable_repo["url"], profile="smoke", assessment_id="web-2").json()["test_id"]
    proxy = CuttingProxy(service.api_ports[0], cut_after=1200)
    try:
        _open(browser, f"{proxy.url}/#/scans/{test_id}", service.api_key)
        _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#log [data-type='scan_complete']"))
        assert proxy.cuts == 1 and proxy.stream_connections >= 2
    finally:
        proxy.close()
    lines = browser.find_elements(By.CSS_SELECTOR, "#log > div")
    stored = service.http.get(service.url(f"/v1/security-scans/{test_id}/events?limit=5000"), timeout=10).json()
    assert [e.get_attribute("data-type") for e in lines] == [e["type"] for e in stored["events"]]
