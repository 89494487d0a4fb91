"""The first admin API key of a local run, kept in a file only its owner can read."""

from __future__ import annotations

import os
from pathlib import Path

from tasks.keys import KeyStore
from tasks.redis_client import connect


def ensure_admin_key(redis_url: str, key_file: Path) -> None:
    """On first start, create an admin key and keep it in a file only its owner can read."""
    store = KeyStore(connect(redis_url))
    if key_file.exists() and store.authenticate(key_file.read_text().strip()) is not None:
        print(f"admin API key: {key_file} (mode 0600)", flush=True)
        return
    plain, principal = store.create("admin", ["*"], name="created by make run")
    key_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(plain + "\n")
    os.chmod(key_file, 0o600)
    print(f"created admin API key {principal.key_id}; stored in {key_file} (mode 0600). Use it as\n"
          f"  curl -H \"Authorization: Bearer $(cat {key_file})\" http://.../v1/security-scans\n"
          f"and manage keys with: python -m app.keys create|list|revoke", flush=True)
