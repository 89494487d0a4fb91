"""The clone phase: bring a scan's source into its workspace through its kind's fetcher
(``tasks.sources``; the fetcher is imported by its dotted path), remove the links in it that are
not safe to follow (``workers.sources.links``), and hash what is left."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import cast

from tasks import sources
from tasks.records import ScanRecord
from tasks.settings import Settings
from workers.redact import Redactor
from workers.sources.base import FetchContext, FetchedSource, Fetcher
from workers.sources.directory import tree_hash
from workers.sources.errors import SourceError
from workers.sources.links import remove_unsafe_links

__all__ = ["FetchedSource", "fetch_source", "fetcher"]
log = logging.getLogger(__name__)


def fetch_source(settings: Settings, record: ScanRecord, dest: Path, redactor: Redactor,
                 should_stop: Callable[[], bool] | None = None, full_history: bool = False) -> FetchedSource:
    """``full_history``: a git source is cloned with its whole history (a scanner reads it)."""
    kind = sources.get(record.source_type)
    if kind is None:
        raise SourceError("source_type_unsupported", f"source type {record.source_type} is not supported")
    ctx = FetchContext(settings=settings, record=record, values={f.name: record.source_value(f.name)
                                                                 for f in kind.fields},
                       dest=dest, redactor=redactor, should_stop=should_stop, full_history=full_history)
    try:
        fetch = fetcher(kind.fetcher)
    except ImportError as exc:
        log.error("source kind %s: its fetcher cannot be loaded: %s", kind.name, exc)
        raise SourceError("source_type_unsupported", f"this worker cannot fetch {kind.name} sources") from exc
    fetched = fetch(ctx)
    warning = remove_unsafe_links(dest).warning()
    if warning is not None:
        fetched.warnings.append(warning)
    if not fetched.hash:
        fetched.hash = tree_hash(dest)
    return fetched


@cache
def fetcher(path: str) -> Fetcher:
    """The function a kind names as ``package.module:function``."""
    module, _, name = path.partition(":")
    found = getattr(importlib.import_module(module), name, None)
    if not callable(found):
        raise ImportError(f"{path} names no fetcher")
    return cast(Fetcher, found)
