"""A source kind that exists only for the tests: ``snippet``, one file of code sent in the request
itself. Named in ``PLUGINS``, it is registered in the API and the workers a test starts; its fetcher
(``tests.support.snippet_fetch``) is loaded by the workers alone, by its dotted path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tasks import sources
from tasks.errors import ErrorCode
from tasks.settings import Settings
from tasks.sources import CheckContext, FieldInvalid, SourceField, SourceKind, SourceRefused

NAME = "snippet"
PRIVATE = "private/"  # a folder the kind's own check refuses, so a test can see the check run


def check_code(value: str, settings: Settings | None) -> None:
    if "\x00" in value:
        raise FieldInvalid("must not contain NUL characters")


class SnippetSource(SourceKind):
    name = NAME
    fields = (
        SourceField("snippet_code", required=True, min_length=1, max_length=20000, check=check_code),
        SourceField("snippet_path", pattern=r"^[a-z][a-z0-9_/]{0,60}\.py$"),
    )
    fetcher = "tests.support.snippet_fetch:fetch_snippet"

    def check(self, values: Mapping[str, Any], ctx: CheckContext) -> None:
        if str(values.get("snippet_path", "")).startswith(PRIVATE):
            raise SourceRefused(ErrorCode.PATH_NOT_ALLOWED, f"snippets may not be placed under {PRIVATE}",
                                field="snippet_path", detail="a private folder")


KIND = SnippetSource()
if sources.get(NAME) is None:  # imported once per process; a test may have registered it already
    sources.register(KIND)
