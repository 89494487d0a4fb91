"""Every Redis key name the service uses, in one place.

All keys start with ``ca:``. A key that several processes share (the API, the workers, the
launcher, the benchmarks) is named here and nowhere else; Lua scripts get their keys passed in
(``KEYS[...]``), except for the per-workspace queued set, whose prefix ``QUEUED_WS_PREFIX`` they
are given as an argument or embed from here.
"""

from __future__ import annotations

# A placeholder for an optional key of a Lua script that has nothing to touch.
NONE = "ca:none"

# -- scans (tasks.store) ------------------------------------------------------------------------
ALL_INDEX = "ca:idx:all"  # zset of every scan id, scored by creation time
STATUS_PREFIX = "ca:status:"  # + status: set of the scan ids in that status
QUEUED_WS_PREFIX = "ca:queued:ws:"  # + workspace: set of its QUEUED scans (the queue cap)
WORKSPACE_INDEX_PREFIX = "ca:idx:ws:"


def scan(test_id: str) -> str:
    """One scan's record (a hash of JSON values)."""
    return f"ca:scan:{test_id}"


def workspace_index(workspace_id: str) -> str:
    """The zset of one workspace's scan ids, scored by creation time."""
    return WORKSPACE_INDEX_PREFIX + workspace_id


def status_set(status: str) -> str:
    return STATUS_PREFIX + status


def queued_in_workspace(workspace_id: str) -> str:
    return QUEUED_WS_PREFIX + workspace_id


def events(test_id: str) -> str:
    """One scan's event stream."""
    return f"ca:events:{test_id}"


def lease(test_id: str) -> str:
    """The running worker's lease on a scan."""
    return f"ca:lease:{test_id}"


# -- uploads (tasks.uploads) --------------------------------------------------------------------
UPLOAD_COUNTS = "ca:uploads:counts"  # hash: upload status -> how many scans are in it


def upload_done(test_id: str, request_id: str) -> str:
    """The per-destination results of one upload request."""
    return f"ca:upload:done:{test_id}:{request_id}"


TRUST_SEEN_PREFIX = "ca:trust:seen:"  # + request nonce: the embedded Trust's replay guard

# -- API keys (tasks.api_keys, app.limits) ------------------------------------------------------
KEYS_INDEX = "ca:keys"  # hash: key id -> key metadata


def api_key(digest: str) -> str:
    return f"ca:key:{digest}"


def rate_bucket(digest: str) -> str:
    """The token bucket of a key (see ``app.limits``)."""
    return f"ca:rl:{digest}"


def stream_token(token_digest: str) -> str:
    return f"ca:wstoken:{token_digest}"


def stream_connections(key_id: str) -> str:
    """The open WebSocket streams of one key (its per-key cap)."""
    return f"ca:wsconn:{key_id}"


# -- processes ----------------------------------------------------------------------------------
WORKERS = "ca:workers"  # hash: worker name -> heartbeat (workers.presence)
ACTIVE_STREAMS = "ca:ws:active"  # hash: API process -> streams it serves
SWEEPER_LOCK = "ca:sweeper:lock"
