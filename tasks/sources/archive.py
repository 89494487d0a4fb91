"""The ``archive`` source kind (``archive_path``): an archive inside ``ALLOWED_SOURCE_ROOTS``, or the
id of one uploaded with ``POST /v1/security-scans/upload-archive`` (``tasks.archives``). Fetched
(extracted) by ``workers.sources.archive.fetch_archive``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tasks import archives
from tasks.sources.base import CheckContext, SourceField, SourceKind, SourceRefused, inside_roots


class ArchiveSource(SourceKind):
    name = "archive"
    fields = (SourceField("archive_path", required=True, min_length=1, max_length=4096),)
    fetcher = "workers.sources.archive:fetch_archive"

    def check(self, values: Mapping[str, Any], ctx: CheckContext) -> None:
        path = values["archive_path"]
        if archives.is_archive_id(path):
            # Another workspace's upload answers as an unknown one.
            found = archives.load(ctx.settings.archives_root, path)
            if found is None or ctx.principal is None or not archives.usable_in(
                    found[1], ctx.workspace_id, ctx.principal.all_workspaces):
                raise SourceRefused("archive_not_found", "no uploaded archive has that id", field="archive_path",
                                    detail="unknown upload id")
            return
        if not inside_roots(path, ctx.settings.allowed_source_roots):
            raise SourceRefused("path_not_allowed", "archive_path must lie inside a configured allowed root",
                                field="archive_path", detail="outside the allowed roots")


KIND = ArchiveSource()
