"""The clone process started ahead of need: it waits for its job on stdin, runs it, and is never
shared across a fork."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tasks.settings import Settings
from workers import toolrun
from workers.sources.git import CLONE_ARGV, SpareClone


@pytest.fixture
def settings(tmp_path):
    # The sandboxed clone runs as an unprivileged user: what it reads must be readable by it.
    tmp_path.chmod(0o755)
    return Settings.from_env({"CERTUS_ASSURANCE_ALLOW_LOCAL_SOURCES": "true",
                              "CERTUS_ASSURANCE_ALLOWED_SOURCE_ROOTS": str(tmp_path),
                              "CERTUS_ASSURANCE_WORK_ROOT": str(tmp_path / "work")})


def _repo(path):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True, env=env)
    (path / "app.py").write_text("print('hi')\n")
    subprocess.run(["git", "add", "-A"], cwd=path, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "one"], cwd=path, check=True, env=env)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, check=True, capture_output=True,
                          text=True).stdout.strip()


def test_a_prepared_spare_waits_then_runs_the_job_it_is_given(tmp_path, settings):
    head = _repo(tmp_path / "origin")
    spares = SpareClone()
    spares.prepare(settings)
    spare = spares._spare
    assert spare is not None and spare.process.poll() is None  # loaded, waiting for its job
    taken = spares.take(settings)
    assert taken is spare and spares._spare is None  # handed over; the next one waits for this clone
    job = {"url": str(tmp_path / "origin"), "dest": str(taken.folder / "src"), "branch": None, "commit": None,
           "max_files": 100, "max_bytes": 10**7, "allowed_hosts": [], "full_history": False}
    result = toolrun.run(CLONE_ARGV, cwd=str(tmp_path), timeout=60, capture_stdout=True,
                         stdin_data=(json.dumps(job) + "\n").encode(), process=taken.process)
    assert result.exit_code == 0, result.stderr_tail
    assert json.loads(result.stdout_tail)["commit"] == head
    assert (taken.folder / "src" / "app.py").read_text() == "print('hi')\n"
    spares.prepare(settings)
    following = spares._spare
    assert following is not None and following is not spare and following.process.poll() is None
    assert following.process.stdin is not None
    following.process.stdin.close()
    assert following.process.wait(timeout=30) == 0


def test_a_spare_inherited_over_fork_is_not_used_and_a_lone_spare_exits_at_end_of_input(settings):
    spares = SpareClone()
    spares.prepare(settings)
    inherited = spares._spare
    assert inherited is not None
    spares._owner = os.getpid() + 1  # as a forked pool process sees its parent's spare
    fresh = spares.take(settings)
    spares.prepare(settings)
    following = spares._spare
    try:
        assert fresh is not inherited and fresh.process.poll() is None and following not in (None, inherited, fresh)
    finally:
        for spare in (fresh, inherited, following):
            assert spare is not None and spare.process.stdin is not None
            spare.process.stdin.close()  # no job: the process ends on its own
            assert spare.process.wait(timeout=30) == 0


def test_a_dead_spare_is_replaced_and_a_job_for_a_gone_process_is_no_error(tmp_path, settings):
    spares = SpareClone()
    spares.prepare(settings)
    dead = spares._spare
    assert dead is not None and dead.process.stdin is not None
    dead.process.kill()
    dead.process.wait(timeout=30)
    fresh = spares.take(settings)
    assert spares._spare is None
    spares.prepare(settings)
    following = spares._spare
    assert fresh is not dead and fresh.process.poll() is None
    # A process that has already exited: writing its job meets a closed pipe, and the result
    # reports the exit instead of raising.
    gone = toolrun.start(["true"], cwd=str(tmp_path), stdin=True)
    gone.wait(timeout=30)
    result = toolrun.run(["true"], cwd=str(tmp_path), timeout=30, stdin_data=b"x" * 1_000_000, process=gone)
    assert result.exit_code == 0 and not result.cancelled and not result.timed_out
    for spare in (fresh, following):
        assert spare is not None and spare.process.stdin is not None
        spare.process.stdin.close()
        assert spare.process.wait(timeout=30) == 0


def test_a_clone_uses_the_spare_and_leaves_the_next_one_loading(tmp_path, monkeypatch, settings):
    from workers.sources import git

    head = _repo(tmp_path / "origin")
    spares = SpareClone()
    spares.prepare(settings)
    used = spares._spare
    monkeypatch.setattr(git, "spares", spares)
    checkout = git.fetch(settings, str(tmp_path / "origin"), tmp_path / "checkout", branch=None, commit=None)
    assert checkout.commit == head
    assert (tmp_path / "checkout" / "app.py").read_text() == "print('hi')\n"
    assert used is not None and used.process.poll() == 0  # the spare ran this clone
    assert not used.folder.exists()  # its folder is gone: the checkout moved into the scan's workspace
    following = spares._spare
    assert following is not None and following is not used and following.process.poll() is None
    assert following.process.stdin is not None
    following.process.stdin.close()
    assert following.process.wait(timeout=30) == 0
