"""in-toto Statement v1: ``{_type, subject[{name, digest{sha256}}], predicateType, predicate}``.

Parsing is ``tasks.bundle_verifier``'s, the code the command-line client verifies bundles with."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tasks.bundle_verifier import (
    ACCEPTED_STATEMENT_TYPES,
    STATEMENT_TYPE,
    StatementError,
    decode_statement,
    is_hex_sha256,
    subject_digests,
)

__all__ = ["ACCEPTED_STATEMENT_TYPES", "STATEMENT_TYPE", "StatementError", "decode", "encode", "statement",
           "subject_digests"]

decode = decode_statement


def statement(subjects: Mapping[str, str], predicate_type: str, predicate: Any) -> dict[str, Any]:
    """A statement over ``subjects`` (name -> hex sha256), sorted by name so it is reproducible."""
    if not subjects:
        raise StatementError("statement_empty", "a statement needs at least one subject")
    for name, digest in subjects.items():
        if not is_hex_sha256(digest):
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
