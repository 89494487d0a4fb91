"""in-toto Statement v1: ``{_type, subject[{name, digest{sha256}}], predicateType, predicate}``."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
# Older readers and cosign itself also produce v0.1; both are read.
ACCEPTED_STATEMENT_TYPES = (STATEMENT_TYPE, "https://in-toto.io/Statement/v0.1")
_HEX64 = re.compile(r"^[0-9a-f]{64}\Z")


class StatementError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def statement(subjects: Mapping[str, str], predicate_type: str, predicate: Any) -> dict[str, Any]:
    """A statement over ``subjects`` (name -> hex sha256), sorted by name so it is reproducible."""
    if not subjects:
        raise StatementError("statement_empty", "a statement needs at least one subject")
    for name, digest in subjects.items():
        if not _HEX64.match(digest):
            raise StatementError("statement_malformed", f"subject {name!r} has no hex sha256 digest")
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": subjects[name]}} for name in sorted(subjects)],
        "predicateType": predicate_type,
        "predicate": predicate,
    }


def encode(stmt: Mapping[str, Any]) -> bytes:
    """Canonical-enough bytes for signing: sorted keys, no insignificant whitespace."""
    return json.dumps(stmt, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def decode(payload: bytes) -> dict[str, Any]:
    try:
        stmt = json.loads(payload)
    except ValueError as exc:
        raise StatementError("statement_malformed", "the statement is not JSON") from exc
    if not isinstance(stmt, dict) or stmt.get("_type") not in ACCEPTED_STATEMENT_TYPES:
        raise StatementError("statement_malformed", "not an in-toto statement")
    subjects = stmt.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise StatementError("statement_malformed", "the statement has no subjects")
    for entry in subjects:
        if (not isinstance(entry, dict) or not isinstance(entry.get("name"), str)
                or not isinstance(entry.get("digest"), dict)):
            raise StatementError("statement_malformed", "a subject needs a name and a digest")
    if not isinstance(stmt.get("predicateType"), str):
        raise StatementError("statement_malformed", "the statement has no predicateType")
    return stmt


def subject_digests(stmt: Mapping[str, Any]) -> dict[str, str]:
    """name -> sha256 of every subject; a name given twice is an error (it would be ambiguous)."""
    out: dict[str, str] = {}
    for entry in stmt["subject"]:
        name = entry["name"]
        digest = entry["digest"].get("sha256")
        if not isinstance(digest, str) or not _HEX64.match(digest):
            raise StatementError("statement_malformed", f"subject {name!r} has no sha256 digest")
        if name in out:
            raise StatementError("statement_malformed", f"subject {name!r} appears twice")
        out[name] = digest
    return out
