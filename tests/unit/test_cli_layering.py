"""The CLI is a pure API client: it may use requests, websocket-client, cryptography and the standard
library, never the service's own packages, so it installs and runs anywhere."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALLOWED_THIRD_PARTY = {"requests", "websocket", "cryptography"}


def test_cli_imports_only_the_client_libraries():
    stdlib = set(sys.stdlib_module_names)
    problems = []
    for path in (ROOT / "cli").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module.split(".")[0]]
            for name in names:
                if name not in stdlib and name != "cli" and name not in ALLOWED_THIRD_PARTY:
                    problems.append(f"{path.relative_to(ROOT)} imports {name}")
    assert problems == []


def test_cli_process_loads_nothing_of_the_service():
    code = ("import sys, cli.main; cli.main.build_parser(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('app', 'tasks', 'workers', 'stack', 'flask', 'celery', 'redis', 'marshmallow')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
