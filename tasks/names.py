"""Explicit task and queue names: the API sends tasks by name and never imports the engine."""

from tasks.profiles import BUILTIN_PROFILES

SCAN_RUN = "scans.run"
UPLOAD_VERIFY = "uploads.verify"
UPLOAD_PUBLISH = "uploads.publish"

SCANS_QUEUE = "scans"
UPLOADS_QUEUE = "uploads"


BUILTIN_PROFILE_NAMES = tuple(BUILTIN_PROFILES)


def scan_queue(profile: str, per_profile: bool) -> str:
    """The queue a scan is sent to: ``scans``, or ``scans.<profile>`` with per-profile pools.

    Only built-in profiles get their own queue: a profile a manifest defines goes to ``scans``, so
    no scan waits on a queue that no worker listens to.
    """
    name = profile.lower()
    if per_profile and name in BUILTIN_PROFILE_NAMES:
        return f"{SCANS_QUEUE}.{name}"
    return SCANS_QUEUE


def all_queues(per_profile: bool) -> list[str]:
    scans = [f"{SCANS_QUEUE}.{p}" for p in BUILTIN_PROFILE_NAMES] if per_profile else []
    return [SCANS_QUEUE, *scans, UPLOADS_QUEUE]
