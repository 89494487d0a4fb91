"""What a publish destination is: where a permitted bundle goes (``workers.uploads.destinations``
lists them).

A destination is made from the settings when the upload engine first needs it and builds its client
on first use, so a worker boots without reaching any of them. Publishing must be idempotent (a
retried or redelivered task publishes the same bundle again): the same digests leave the same
objects. A step that may succeed later raises ``TransientUploadError`` (retried with backoff), one
that never will ``PermanentUploadError`` (the upload ends ``upload_failed``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tasks.records import ScanRecord
from tasks.settings import Settings
from workers.uploads.signing import Signer


@dataclass(frozen=True)
class PublishJob:
    test_id: str
    root: Path  # the bundle, each file just checked against its permitted digest
    record: ScanRecord
    digests: dict[str, str]  # bundle path -> the sha256 (hex) the Trust permitted
    permit: dict[str, Any]  # the upload's permit (tier, signer, artifacts, upload_permission_id)
    signer: Callable[[], Signer]  # the service's signing key, loaded on first call


class Destination(Protocol):
    # Its key in the Trust request's ``storage_destinations`` (the contract's name for it).
    trust_name: str

    def location(self, test_id: str) -> str:
        """Where the bundle of ``test_id`` will be published, as told to the Trust."""

    def publish(self, job: PublishJob) -> dict[str, Any]:
        """Publish the bundle; what it returns is the destination's entry in ``remote_artifacts``."""


# A destination is made from the settings (``DatalakeDestination(settings)``).
DestinationFactory = Callable[[Settings], Destination]
