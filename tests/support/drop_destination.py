"""A publish destination that exists only for the tests: ``drop``, every permitted bundle file
copied into a folder beside the artifact root (``<ARTIFACT_ROOT>.drop/<test_id>/``), checked
against its permitted digest. Named in ``WORKER_PLUGINS``, it is registered in the workers a test
starts, which then publish every permitted upload to it as well."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

from tasks.settings import Settings
from workers.uploads import destinations
from workers.uploads.base import Destination, PublishJob
from workers.uploads.errors import PermanentUploadError

NAME = "drop"
TRUST_NAME = "test_drop"


def drop_root(settings: Settings) -> Path:
    root = Path(settings.artifact_root)
    return root.with_name(root.name + ".drop")


class DropDestination(Destination):
    trust_name = TRUST_NAME

    def __init__(self, settings: Settings) -> None:
        self.root = drop_root(settings)

    def location(self, test_id: str) -> str:
        return f"file://{self.root / test_id}/"

    def publish(self, job: PublishJob) -> dict[str, Any]:
        folder = self.root / job.test_id
        for name, digest in sorted(job.digests.items()):
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(job.root / name, target)
            if hashlib.sha256(target.read_bytes()).hexdigest() != digest:
                raise PermanentUploadError("upload_failed", f"{name} changed on its way to the drop folder")
        return {"location": self.location(job.test_id), "files": len(job.digests)}


if NAME not in destinations.names():  # imported once per process; a test may have registered it already
    destinations.register(NAME, DropDestination)
