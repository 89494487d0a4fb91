"""Runs the real ``certus-assurance`` command as a subprocess, configured for a test service."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


def cli_argv() -> list[str]:
    script = shutil.which("certus-assurance", path=os.path.dirname(sys.executable))
    return [script] if script else [sys.executable, "-m", "cli"]


def run_cli(*args: str, url: str | None = None, api_key: str | None = None, timeout: float = 240,
            env: dict[str, str] | None = None) -> CliResult:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CERTUS_ASSURANCE_")}
    full_env["XDG_CONFIG_HOME"] = "/nonexistent"  # never read a developer's own config file
    if url:
        full_env["CERTUS_ASSURANCE_URL"] = url
    if api_key:
        full_env["CERTUS_ASSURANCE_API_KEY"] = api_key
    full_env.update(env or {})
    proc = subprocess.run([*cli_argv(), *args], capture_output=True, text=True, timeout=timeout, env=full_env)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def service_cli(service: Any) -> Callable[..., Any]:
    """A runner bound to ``service`` with whatever credentials its HTTP session carries."""
    auth = service.http.headers.get("Authorization", "")
    key = auth.split(" ", 1)[1] if auth.startswith("Bearer ") else None

    def run(*args: str, **kwargs: Any) -> CliResult:
        return run_cli(*args, url=service.base_url, api_key=key, **kwargs)

    return run
