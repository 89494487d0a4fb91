"""Symbolic links in a cloned repository never lead a scanner out of the checkout.

A repository served by a real git daemon carries links to /etc/passwd, to a file beside the
service's workspaces (``../../outside-marker-file``, reached from the checkout), to the same file by
its absolute path, to /dev/zero, to a fifo, a link loop, a folder link back to its own parent, and
one honest link inside the tree. Real scans (bandit follows links to files) through the real
service must: finish well inside the tool timeout, quote the outside file nowhere (SARIF, events,
status, bundle, worker logs), list every removed link in a ``symlinks_removed`` warning, and still
scan the file the honest link names.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator

import pytest

from tests.support.gitrepos import GitDaemon, commit_files, git, make_repo
from tests.support.service import Service, base_env

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

MARKER = "outside-marker-" + secrets.token_hex(8)
TOOL_TIMEOUT = 90
REMOVED = {"passwd.py", "escape.py", "abs-marker.py", "zero.py", "pipe.py", "loop-a.py", "loop-b.py", "pkg/up"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[tuple[Service, str]]:
    tmp = tmp_path_factory.mktemp("symlinks")
    work_root = tmp / "work"
    work_root.mkdir()
    # What a link that leaves the checkout would read: Python that bandit flags, naming the marker.
    outside = f"import subprocess\nsubprocess.call('echo {MARKER}', shell=True)\n"
    (work_root / "outside-marker-file").write_text(outside)  # WORK_ROOT/{scan}/src/../../
    (tmp / "elsewhere.py").write_text(outside)
    os.mkfifo(tmp / "fifo")
    daemon = GitDaemon(tmp / "git").start()
    repo = make_repo(daemon.base, "links", {
        "app.py": "import subprocess\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n",
        "pkg/real.py": "import pickle\n\ndef load(data):\n    return pickle.loads(data)\n",
    })
    for name, target in {"passwd.py": "/etc/passwd", "escape.py": "../../outside-marker-file",
                         "abs-marker.py": str(tmp / "elsewhere.py"), "zero.py": "/dev/zero",
                         "pipe.py": str(tmp / "fifo"), "loop-a.py": "loop-b.py", "loop-b.py": "loop-a.py",
                         "pkg/up": "..", "alias.py": "pkg/real.py"}.items():
        os.symlink(target, repo / name)
    commit_files(repo, {}, "links")
    assert git(repo, "ls-files", "-s", "alias.py").startswith("120000")  # stored as a link
    # Without the sandbox: it would hide what these links point at, and the test would no longer show
    # that the links themselves are gone (a link to /dev/zero still reads without end inside it).
    env = base_env(tmp, redis_url.rsplit("/", 1)[0] + "/13", CERTUS_ASSURANCE_TOOL_TIMEOUT=str(TOOL_TIMEOUT),
                   CERTUS_ASSURANCE_SANDBOX="off")
    svc = Service(env=env, workdir=tmp)
    try:
        svc.start_worker("links", concurrency=2)
        svc.start_api()
        svc.wait_workers(1)
        yield svc, daemon.url("links")
    finally:
        svc.stop()
        daemon.stop()


@pytest.mark.parametrize("profile", ["smoke", "light"])
def test_links_out_of_a_clone_are_removed_before_any_scanner_reads_them(setup, profile):
    svc, url = setup
    started = time.monotonic()
    resp = svc.submit(git_url=url, profile=profile)
    assert resp.status_code == 202, resp.text
    test_id = resp.json()["test_id"]
    record = svc.wait_done(test_id, timeout=TOOL_TIMEOUT * 2)
    elapsed = time.monotonic() - started
    assert record["status"] == "SUCCEEDED", record["errors"]
    # A fifo or /dev/zero read would have held bandit until its timeout (and failed it).
    assert elapsed < TOOL_TIMEOUT, elapsed
    assert not record["summary"].get("tool_errors"), record["summary"]

    warnings = [w for w in record["warnings"] if w["code"] == "symlinks_removed"]
    assert len(warnings) == 1, record["warnings"]
    message = warnings[0]["message"]
    assert message.startswith(f"{len(REMOVED)} symbolic links were removed"), message
    listed = set(message.split(": ", 1)[1].split(", "))
    assert listed == REMOVED, message

    bundle = svc.artifact_root / test_id
    sarif = json.loads((bundle / "reports/sast/bandit.sarif.json").read_text())
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in sarif["runs"][0]["results"]}
    assert {"app.py", "pkg/real.py", "alias.py"} <= uris  # the link inside the tree was followed
    assert uris.isdisjoint(REMOVED)

    events = svc.http.get(svc.url(f"/v1/security-scans/{test_id}/events"), params={"limit": 5000}).json()
    texts = [json.dumps(record), json.dumps(events)]
    texts += [p.read_text(errors="replace") for p in bundle.rglob("*") if p.is_file()]
    texts += [p.read_text(errors="replace") for p in svc.workdir.glob("*.log")]
    for text in texts:
        assert MARKER not in text
        assert "root:x:0:0" not in text
