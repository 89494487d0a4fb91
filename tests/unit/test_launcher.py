"""The one launcher of the service's processes (stack/launcher.py), on small real processes: the
stop order, a name used twice, and an unsupervised launch that neither restarts nor waits for a
process that is gone."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from stack import processes
from stack.launcher import Launcher
from stack.ports import free_port


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_stop_goes_balancer_apis_workers_redis_whatever_the_start_order() -> None:
    launcher = Launcher()
    stopped: list[str] = []

    def stop(name: str) -> Callable[[subprocess.Popen[bytes]], None]:
        def stop_it(proc: subprocess.Popen[bytes]) -> None:
            stopped.append(name)
            processes.stop(proc, timeout=5)
        return stop_it

    for name, kind in [("redis", "redis"), ("w1", "worker"), ("api1", "api"), ("w2", "worker"),
                       ("lb", "balancer"), ("api2", "api")]:
        launcher.add(name, kind, sleeper, stop(name))
    procs = [launcher.proc(name) for name in ("redis", "w1", "api1", "w2", "lb", "api2")]
    launcher.stop()
    assert stopped == ["lb", "api1", "api2", "w1", "w2", "redis"]
    assert all(proc.poll() is not None for proc in procs)
    with pytest.raises(ValueError):
        launcher.add("x", "sidecar", sleeper)


def test_a_name_started_again_keeps_the_first_process_stoppable() -> None:
    launcher = Launcher()
    first = launcher.add("w", "worker", sleeper)
    second = launcher.add("w", "worker", sleeper)
    assert launcher.proc("w") is second and first.poll() is None
    launcher.stop()
    assert first.poll() is not None and second.poll() is not None


def test_unsupervised_wait_ends_when_the_process_exits_and_nothing_restarts(tmp_path: Path) -> None:
    launcher = Launcher(logs=tmp_path)
    log = tmp_path / "quitter.log"
    launcher.add("quitter", "api", lambda: subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"]))
    launcher.log_files["quitter"] = log
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=r"quitter exited \(3\).*quitter\.log"):
        launcher.wait_answers("quitter", "127.0.0.1", free_port(), 60)
    assert time.monotonic() - t0 < 30
    proc = launcher.proc("quitter")
    launcher.check()
    assert launcher.proc("quitter") is proc  # not started again
    launcher.stop()


def test_supervised_launcher_restarts_what_exits() -> None:
    launcher = Launcher(supervise=True)
    launcher.supervisor.quiet = True
    launcher.add("once", "worker", lambda: subprocess.Popen([sys.executable, "-c", "pass"]))
    first = launcher.proc("once")
    first.wait()
    deadline = time.monotonic() + 30
    while launcher.proc("once") is first:
        launcher.check()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    launcher.stop()
