"""The CLI is a pure API client: it may use requests, websocket-client, cryptography and the standard
library, never the service's own packages, so it installs and runs anywhere. The exceptions are
the bundle verifier (``tasks.bundle_verifier``), the rule for showing outside text
(``tasks.textsafe``) and the contract's named values (``tasks.states``: statuses, severities), which
are themselves the standard library and cryptography only, so the CLI and the service verify a
bundle, escape text and order severities with the same code."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALLOWED_THIRD_PARTY = {"requests", "websocket", "cryptography"}
SHARED_WITH_THE_SERVICE = {"tasks.bundle_verifier", "tasks.textsafe", "tasks.states"}


def _imported(path: Path) -> list[str]:
    """Every absolute module name ``path`` imports (``from a import b`` names ``a`` and ``a.b``)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return names


def _outside(name: str, allowed: set[str]) -> bool:
    top = name.split(".")[0]
    return top not in sys.stdlib_module_names and top not in allowed


def test_cli_imports_only_the_client_libraries():
    problems = []
    for path in (ROOT / "cli").rglob("*.py"):
        for name in _imported(path):
            if name.split(".")[0] == "tasks":
                if name != "tasks" and name not in SHARED_WITH_THE_SERVICE and \
                        name.rsplit(".", 1)[0] not in SHARED_WITH_THE_SERVICE:
                    problems.append(f"{path.relative_to(ROOT)} imports {name}")
            elif _outside(name, ALLOWED_THIRD_PARTY | {"cli"}):
                problems.append(f"{path.relative_to(ROOT)} imports {name}")
    assert problems == []


def test_the_shared_modules_need_only_the_client_libraries():
    for module in SHARED_WITH_THE_SERVICE:
        path = ROOT / f"{module.replace('.', '/')}.py"
        assert [name for name in _imported(path) if _outside(name, {"cryptography"})] == [], module
    assert _imported(ROOT / "tasks" / "__init__.py") == []  # importing the package loads nothing else


def test_cli_process_loads_nothing_of_the_service():
    code = ("import sys, cli.main; cli.main.build_parser(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('app', 'tasks', 'workers', 'stack', 'flask', 'celery', 'redis', 'marshmallow')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(sorted({"tasks", *SHARED_WITH_THE_SERVICE}))
