"""Every Redis key name is written in one module (tasks/keyspace.py), nowhere else."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A string that starts like one of our key names: "ca:" followed by a name.
KEY_LITERAL = re.compile(r"""["']ca:[a-z]""")


def test_no_key_name_is_written_outside_the_keyspace_module():
    found = []
    for package in ("app", "tasks", "workers", "cli", "stack", "bench", "trust_service"):
        for path in (ROOT / package).rglob("*.py"):
            if path == ROOT / "tasks" / "keyspace.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if KEY_LITERAL.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []
