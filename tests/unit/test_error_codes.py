"""Every error code is one ``ErrorCode``: the documented ones, and every code the code raises."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tasks.errors import CodedError, ErrorCode

ROOT = Path(__file__).resolve().parents[2]
# The classes whose first (APIError: second) argument is a code; the service layer's errors
# (app/services/errors.py) take it first.
SERVICE_ERRORS = ("Invalid", "Malformed", "NotFound", "Conflict", "Forbidden", "Unauthenticated", "TooLarge",
                  "RateLimited", "Unavailable")
CODED = {**dict.fromkeys(SERVICE_ERRORS, 0),
         "APIError": 1, "HostNotAllowed": 0, "UnsafePath": 0, "SigningKeyError": 0, "PermanentUploadError": 0,
         "SourceError": 0, "ManifestSourceError": 0, "ManifestSignatureError": 0, "CloneError": 0, "Stop": 1,
         "VerifyError": 0, "EnvelopeError": 0, "StatementError": 0, "SourceRefused": 0}


def _documented() -> set[str]:
    codes: set[str] = set()
    for line in (ROOT / "docs/errors.md").read_text().splitlines():
        if not line.startswith("|") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        # The code column: the first, or the second after an HTTP status or an upload outcome.
        outcome = re.fullmatch(r"\d{3}|`denied`|`upload_failed`", cells[0])
        codes |= set(re.findall(r"`([a-z][a-z0-9_]+)`", cells[1] if outcome else cells[0]))
    return codes


def _raised() -> dict[str, str]:
    found: dict[str, str] = {}
    for package in ("app", "tasks", "workers"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                index = CODED.get(name)
                if index is None or len(node.args) <= index:
                    continue
                arg = node.args[index]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found[arg.value] = f"{path.relative_to(ROOT)}:{node.lineno}"
    return found


def test_every_documented_code_is_an_error_code():
    assert sorted(_documented() - set(ErrorCode)) == []


def test_every_code_the_service_raises_is_an_error_code():
    raised = _raised()
    assert len(raised) > 50  # the scan found the raise sites
    assert {code: where for code, where in raised.items() if code not in set(ErrorCode)} == {}


def test_the_scan_knows_every_service_error():
    from app.services.errors import ServiceError

    assert sorted(cls.__name__ for cls in ServiceError.__subclasses__()) == sorted(SERVICE_ERRORS)


def test_a_coded_error_refuses_a_code_that_does_not_exist():
    assert CodedError("scan_not_found", "x").code is ErrorCode.SCAN_NOT_FOUND
    with pytest.raises(ValueError):
        CodedError("no_such_code", "x")
