"""Finding stock cosign for the interoperability tests (they skip, saying why, when it is absent)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ENV_DIR = "CERTUS_COSIGN_DIR"
REPO = Path(__file__).resolve().parents[2]
HINT = (f"stock cosign not found: put it on PATH, set {ENV_DIR} to a folder holding it, "
        "or run scripts/get-cosign.sh (unpacks Debian's cosign into .tools/cosign)")


def find_cosign() -> str | None:
    candidates: list[Path] = []
    given = os.environ.get(ENV_DIR)
    if given:
        candidates += [Path(given) / "cosign", Path(given) / "usr" / "bin" / "cosign"]
    candidates.append(REPO / ".tools" / "cosign" / "usr" / "bin" / "cosign")
    on_path = shutil.which("cosign")
    if on_path:
        candidates.insert(0 if not given else 2, Path(on_path))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return None


def cosign_or_skip() -> str:
    path = find_cosign()
    if path is None:
        pytest.skip(HINT)
    return path


def run_cosign(binary: str, *args: str, cwd: Path, password: str | None = None,
               timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd),
           # Offline: never reach for the public Sigstore infrastructure.
           "SIGSTORE_NO_CACHE": "1", "TUF_ROOT": str(cwd / ".sigstore")}
    if password is not None:
        env["COSIGN_PASSWORD"] = password
    return subprocess.run([binary, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
