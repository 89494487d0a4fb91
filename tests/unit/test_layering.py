"""The dependency rule app -> tasks <- workers, checked on the source and in a real API process."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {
    "app": {"workers", "dulwich", "boto3", "botocore", "bandit"},
    "tasks": {"app", "workers", "flask", "flask_sock", "marshmallow", "dulwich", "boto3"},
    "workers": {"app", "flask", "flask_sock", "marshmallow"},
    # The standalone Trust shares only the policy (workers.uploads.trust_policy) with the service.
    "trust_service": {"app", "flask_sock", "marshmallow", "boto3", "dulwich", "celery"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_packages_respect_the_dependency_rule():
    problems = []
    for package, forbidden in FORBIDDEN.items():
        for path in (ROOT / package).rglob("*.py"):
            bad = _imports(path) & forbidden
            if bad:
                problems.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert problems == []


def test_api_process_never_loads_the_engine():
    code = (
        "import sys; from app import create_app; from tasks.settings import Settings; "
        "a = create_app(Settings(redis_url='redis://127.0.0.1:1/0')); "
        "c = a.test_client(); c.get('/health'); c.post('/v1/security-scans', json={}); "
        "bad = [m for m in ('workers', 'dulwich', 'boto3', 'bandit') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_nothing_connects_at_import_time():
    # Importing every module with an unreachable Redis must not fail or hang.
    code = ("import app, app.routes.scans, tasks.store, tasks.events, tasks.celery_app, workers.engine; "
            "print('ok')")
    env = {"CERTUS_ASSURANCE_REDIS_URL": "redis://127.0.0.1:1/0", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env=env, timeout=30)
    assert out.stdout.strip() == "ok"
