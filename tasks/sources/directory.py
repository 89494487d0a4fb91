"""The ``directory`` source kind: a folder on the worker's file system (``directory_path``), inside
``ALLOWED_SOURCE_ROOTS``. Fetched (copied) by ``workers.sources.directory.fetch_directory``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tasks.sources.base import CheckContext, SourceField, SourceKind, SourceRefused, inside_roots


class DirectorySource(SourceKind):
    name = "directory"
    # A server path, judged by the check against ALLOWED_SOURCE_ROOTS (422 path_not_allowed).
    fields = (SourceField("directory_path", required=True, min_length=1, max_length=4096),)
    fetcher = "workers.sources.directory:fetch_directory"

    def check(self, values: Mapping[str, Any], ctx: CheckContext) -> None:
        if not inside_roots(values["directory_path"], ctx.settings.allowed_source_roots):
            raise SourceRefused("path_not_allowed", "directory_path must lie inside a configured allowed root",
                                field="directory_path", detail="outside the allowed roots")


KIND = DirectorySource()
