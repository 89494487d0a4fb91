"""Keeping the service's processes running, for ``make run`` and ``make cluster``.

A process that exits is started again after a pause that doubles with each exit in a row (1 s,
2 s, 4 s... up to 30 s; a process that ran a minute starts over at 1 s), with a line saying so.
A process that exits more than ``limit`` times within ``window`` seconds is in a crash loop: the
supervisor gives up and the launcher stops everything, saying which process and why. Stopping
(Ctrl-C or SIGTERM to the launcher) goes in the order the launcher names, and nothing is
restarted then.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from stack import processes


class CrashLoop(RuntimeError):
    """A process kept exiting: the supervisor gave up on it."""


@dataclass(frozen=True)
class Policy:
    first_delay: float = 1.0
    max_delay: float = 30.0
    limit: int = 5
    window: float = 300.0
    stable_after: float = 60.0


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


@dataclass
class Child:
    name: str
    start: Callable[[], subprocess.Popen[bytes]]
    stop: Callable[[subprocess.Popen[bytes]], None]
    own_group: bool
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    in_a_row: int = 0
    exits: deque[float] = field(default_factory=deque)
    restart_at: float | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.restart_at is None else None


class Supervisor:
    def __init__(self, policy: Policy | None = None, on_change: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, *, quiet: bool = False) -> None:
        self.policy = policy or Policy()
        self.children: dict[str, Child] = {}
        self.on_change = on_change
        self.clock = clock
        self.quiet = quiet
        self.stopping = False

    def say(self, message: str) -> None:
        if not self.quiet:
            print(f"supervisor: {message}", file=sys.stderr, flush=True)

    def add(self, name: str, start: Callable[[], subprocess.Popen[bytes]],
            stop: Callable[[subprocess.Popen[bytes]], None] | None = None, *, own_group: bool = True) -> Child:
        """Start a process and keep it running. ``own_group``: it leads its own process group,
        whose leftovers (pool processes, tools) are killed when it dies."""
        child = Child(name, start, stop or (lambda proc: processes.stop(proc)), own_group)
        self.children[name] = child
        child.proc = start()
        child.started_at = self.clock()
        return child

    def pids(self) -> dict[str, int | None]:
        return {name: child.pid for name, child in self.children.items()}

    def check(self) -> None:
        """Notice exits and restart what is due; raises CrashLoop when a process keeps exiting.
        Once stopping, nothing is restarted."""
        if self.stopping:
            return
        now = self.clock()
        for child in self.children.values():
            if child.restart_at is None:
                assert child.proc is not None
                code = child.proc.poll()
                if code is not None:
                    self._exited(child, code, now)
            elif now >= child.restart_at:
                self._restart(child, now)

    def _exited(self, child: Child, code: int, now: float) -> None:
        assert child.proc is not None
        if child.own_group:
            # What the process started and left behind (a pool process, a scanner) goes with it.
            try:
                os.killpg(child.proc.pid, signal.SIGKILL)
            except OSError:
                pass
        self._count_exit(child, now, f"{child.name} (pid {child.proc.pid}) exited ({describe_exit(code)})")

    def _count_exit(self, child: Child, now: float, what: str) -> None:
        policy = self.policy
        if now - child.started_at >= policy.stable_after:
            child.in_a_row = 0
        child.in_a_row += 1
        child.exits.append(now)
        while child.exits and now - child.exits[0] > policy.window:
            child.exits.popleft()
        if len(child.exits) > policy.limit:
            raise CrashLoop(f"{what}: it exited {len(child.exits)} times within {policy.window:.0f} s, "
                            f"more than the limit of {policy.limit}; giving up")
        delay = min(policy.first_delay * 2 ** (child.in_a_row - 1), policy.max_delay)
        child.restart_at = now + delay
        self.say(f"{what}; restarting it in {delay:.0f} s ({len(child.exits)} of {policy.limit} restarts "
                 f"allowed within {policy.window:.0f} s)")
        if self.on_change:
            self.on_change()

    def _restart(self, child: Child, now: float) -> None:
        try:
            child.proc = child.start()
        except Exception as exc:  # noqa: BLE001 - a failed start counts as an exit
            child.started_at = now
            self._count_exit(child, self.clock(), f"{child.name} could not be started ({exc})")
            return
        child.started_at = self.clock()
        child.restart_at = None
        self.say(f"{child.name} restarted (pid {child.proc.pid})")
        if self.on_change:
            self.on_change()

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait for ``ready()`` while keeping the processes running."""
        deadline = self.clock() + timeout
        while not ready():
            self.check()
            if self.clock() > deadline:
                raise TimeoutError(f"{what} after {timeout:.0f} s")
            time.sleep(0.2)

    def stop(self, order: Iterable[str]) -> None:
        """Stop the processes in ``order`` (then any not named), each with its own stop; a second
        Ctrl-C while waiting kills what is left."""
        self.stopping = True
        names = list(order)
        names += [name for name in self.children if name not in names]
        try:
            for name in names:
                child = self.children[name]
                if child.proc is not None and child.restart_at is None:
                    self.say(f"stopping {name}")
                    child.stop(child.proc)
        except KeyboardInterrupt:
            self.say("interrupted again: killing what is left")
            for child in self.children.values():
                if child.proc is not None and child.proc.poll() is None:
                    child.proc.kill()
                    child.proc.wait()
        for child in self.children.values():
            child.restart_at = None
