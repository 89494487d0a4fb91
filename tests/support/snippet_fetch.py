"""The worker's half of the test-only ``snippet`` source kind (``tests.support.snippet_source``):
the code written as one file of the scan's source tree."""

from __future__ import annotations

from workers.sources.base import FetchContext, FetchedSource

DEFAULT_PATH = "snippet.py"


def fetch_snippet(ctx: FetchContext) -> FetchedSource:
    path = ctx.dest / str(ctx.values.get("snippet_path") or DEFAULT_PATH)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(ctx.values["snippet_code"]))
    return FetchedSource("snippet", detail={"files": 1})
