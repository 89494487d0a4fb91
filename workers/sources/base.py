"""What a source kind's fetcher gets and gives (the worker's half of a kind; ``tasks.sources`` is
the half the API shares). A kind names its fetcher by dotted path (``SourceKind.fetcher``):
``FetchContext -> FetchedSource``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.records import ScanRecord
from tasks.settings import Settings
from workers.redact import Redactor


@dataclass(frozen=True)
class FetchContext:
    settings: Settings
    record: ScanRecord
    values: Mapping[str, Any]  # the kind's request fields, as the record keeps them
    dest: Path  # the folder to fill (the scan's workspace/src)
    redactor: Redactor  # register any secret before it could reach an event, a log line or an error
    should_stop: Callable[[], bool] | None = None  # poll while working: a cancel or a timeout
    full_history: bool = False  # a selected scanner reads earlier commits (git: no shallow clone)


@dataclass
class FetchedSource:
    source_type: str
    # The content hash; empty: the hash of the tree left once unsafe links are removed.
    hash: str = ""
    commit: str | None = None
    branch: str | None = None
    # The repository's default branch (a git source: the remote's HEAD), the baseline branch of a
    # scan that names none.
    default_branch: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    warnings: list[dict[str, str]] = field(default_factory=list)
    # The worker wrote the tree itself (copied, extracted), so the tools' user is given it; a git
    # clone is written in its own sandbox, as that user already.
    written_by_worker: bool = True


Fetcher = Callable[[FetchContext], FetchedSource]
