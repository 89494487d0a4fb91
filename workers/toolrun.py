"""Runs one scanner as a subprocess from an argv list: streamed output, timeout, output cap,
a scrubbed environment, and a kill switch for cancellation."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

LineSink = Callable[[str, str], None]  # (stream, line)

# Variables a tool may see; everything else (the service's own secrets among it) is dropped.
_PASS_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR")


def scrubbed_env(extra: Mapping[str, str] | None = None, home: str | None = None) -> dict[str, str]:
    env = {k: os.environ[k] for k in _PASS_ENV if k in os.environ}
    env.setdefault("LANG", "C.UTF-8")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["NO_COLOR"] = "1"
    if home:
        env["HOME"] = home
        env["XDG_CACHE_HOME"] = str(Path(home) / ".cache")
    env.update(extra or {})
    return env


@dataclass
class ProcessResult:
    argv: list[str]
    exit_code: int | None
    duration_s: float
    timed_out: bool = False
    cancelled: bool = False
    lines: int = 0
    lines_dropped: int = 0
    stdout_tail: str = ""
    stderr_tail: str = ""


def start(argv: list[str], *, cwd: str, env: Mapping[str, str] | None = None,
          stdin: bool = False) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session (so a kill takes everything it starts), output piped.
    With ``stdin`` it reads its input from a pipe (see ``run``'s ``stdin_data``)."""
    return subprocess.Popen(argv, cwd=cwd, env=dict(env) if env is not None else scrubbed_env(),
                            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)


def run(argv: list[str], *, cwd: str, timeout: float, on_line: LineSink | None = None,
        max_lines: int = 5000, env: Mapping[str, str] | None = None,
        should_stop: Callable[[], bool] | None = None, capture_stdout: bool = False,
        stdin_data: bytes | None = None, process: subprocess.Popen[bytes] | None = None) -> ProcessResult:
    """Run ``argv``; call ``on_line`` for each output line up to ``max_lines``.

    With ``capture_stdout`` the whole stdout is kept (in ``stdout_tail``) instead of streamed, for
    tools that print their report there. ``stdin_data`` is written to the process's input, which
    is then closed. ``process`` is one already started by ``start(..., stdin=True)`` and waiting
    for that input: the deadline counts from now, not from its start.
    """
    started = time.monotonic()
    proc = process or start(argv, cwd=cwd, env=env, stdin=stdin_data is not None)
    if stdin_data is not None and proc.stdin is not None:
        try:
            proc.stdin.write(stdin_data)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # it is gone already: its exit code says how
    result = ProcessResult(argv=argv, exit_code=None, duration_s=0.0)
    lock = threading.Lock()
    captured: list[bytes] = []
    tails: dict[str, list[str]] = {"stdout": [], "stderr": []}

    def pump(stream_name: str, pipe: object) -> None:
        for raw in iter(pipe.readline, b""):  # type: ignore[attr-defined]
            if capture_stdout and stream_name == "stdout":
                captured.append(raw)
                continue
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            tail = tails[stream_name]
            tail.append(line)
            if len(tail) > 20:
                del tail[0]
            with lock:
                if result.lines < max_lines:
                    result.lines += 1
                    emit = True
                else:
                    result.lines_dropped += 1
                    emit = False
            if emit and on_line is not None:
                on_line(stream_name, line)

    # A blocking wait in its own thread reports the exit the moment it happens (a wait with a
    # timeout polls, up to 50 ms late), while this thread checks the deadline and the stop switch.
    exited = threading.Event()

    def reap() -> None:
        proc.wait()
        exited.set()

    pumps = [threading.Thread(target=pump, args=("stdout", proc.stdout), daemon=True),
             threading.Thread(target=pump, args=("stderr", proc.stderr), daemon=True)]
    for t in [*pumps, threading.Thread(target=reap, daemon=True)]:
        t.start()
    deadline = started + timeout
    while True:
        # Asked first: a stop requested before the process got going wins over a quick finish.
        if should_stop is not None and should_stop():
            result.cancelled = True
            _kill(proc)
            break
        if exited.wait(timeout=max(0.0, min(0.2, deadline - time.monotonic()))):
            break
        if time.monotonic() > deadline:
            result.timed_out = True
            _kill(proc)
            break
    for t in pumps:
        t.join(timeout=5)
    result.exit_code = proc.returncode
    result.duration_s = round(time.monotonic() - started, 3)
    result.stdout_tail = b"".join(captured).decode("utf-8", "replace") if capture_stdout else "\n".join(
        tails["stdout"])
    result.stderr_tail = "\n".join(tails["stderr"])
    return result


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill the tool and everything it started (it runs in its own session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)
