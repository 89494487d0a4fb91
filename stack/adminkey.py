"""The first admin API key of a local run, kept in a file only its owner can read."""

from __future__ import annotations

from pathlib import Path

from stack.private_file import write_private
from tasks.api_keys import KeyStore
from tasks.redis_client import connect


def ensure_admin_key(redis_url: str, key_file: Path) -> None:
    """On first start, create an admin key and keep it in a file only its owner can read."""
    store = KeyStore(connect(redis_url))
    if key_file.exists() and store.authenticate(key_file.read_text().strip()) is not None:
        print(f"admin API key: {key_file} (mode 0600)", flush=True)
        return
    plain, principal = store.create("admin", ["*"], name="created by make run")
    write_private(key_file, plain + "\n")
    print(f"created admin API key {principal.key_id}; stored in {key_file} (mode 0600). Use it as\n"
          f"  curl -H \"Authorization: Bearer $(cat {key_file})\" http://.../v1/security-scans\n"
          f"and manage keys with: python -m app.keys create|list|revoke", flush=True)
