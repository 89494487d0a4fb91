"""Settings, read once from ``CERTUS_ASSURANCE_*`` environment variables into one typed object.

Every setting, its default and its meaning is listed in ``SETTINGS`` below; the README's settings
table is generated from the same list (``python -m tasks.settings --markdown``), so docs and code
cannot drift apart.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

PREFIX = "CERTUS_ASSURANCE_"


class SettingsError(ValueError):
    """A setting has a value that cannot be used."""


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {raw!r}")


def _list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _path_list(raw: str) -> tuple[str, ...]:
    return tuple(str(Path(item).resolve()) for item in _list(raw))


def _path(raw: str) -> str:
    return str(Path(raw).expanduser().resolve())


@dataclass(frozen=True)
class Settings:
    redis_url: str = field(default="redis://127.0.0.1:6379/0", metadata={
        "doc": "Redis for scan state and event streams (redis://, rediss:// or unix://). "
               "`make run` starts an embedded Redis when this is unset."})
    broker_url: str = field(default="", metadata={
        "doc": "Celery broker URL; empty means the same as REDIS_URL."})
    artifact_root: str = field(default="var/artifacts", metadata={
        "doc": "Folder holding one bundle folder per scan.", "parse": _path})
    work_root: str = field(default="var/work", metadata={
        "doc": "Scratch folder for clones and tool runs; each scan's workspace is removed when it ends.",
        "parse": _path})
    scan_soft_time_limit: int = field(default=1800, metadata={
        "doc": "Seconds before a scan is asked to stop (it ends FAILED with code `scan_timeout`)."})
    scan_hard_time_limit: int = field(default=1900, metadata={
        "doc": "Seconds before the worker process running a scan is killed."})
    upload_soft_time_limit: int = field(default=600, metadata={
        "doc": "Seconds before an upload task is asked to stop."})
    upload_hard_time_limit: int = field(default=660, metadata={
        "doc": "Seconds before the process running an upload task is killed."})
    lease_seconds: int = field(default=60, metadata={
        "doc": "Lifetime of a scan's lease; the running worker renews it every third of this."})
    stream_maxlen: int = field(default=50000, metadata={
        "doc": "Approximate cap on events kept per scan stream (older events are trimmed)."})
    retention_seconds: int = field(default=30 * 24 * 3600, metadata={
        "doc": "How long scan records and event streams are kept after a scan ends."})
    allow_local_sources: bool = field(default=False, metadata={
        "doc": "Allow `file://` git URLs and local paths as git sources.", "parse": _bool})
    git_allowed_hosts: tuple[str, ...] = field(default=(), metadata={
        "doc": "Comma-separated hosts allowed even when they resolve to loopback or private "
               "addresses (e.g. an internal git server).", "parse": _list})
    allowed_source_roots: tuple[str, ...] = field(default=(), metadata={
        "doc": "Comma-separated folders under which `directory` and `archive` sources may lie.",
        "parse": _path_list})
    clone_timeout: int = field(default=300, metadata={
        "doc": "Seconds a clone may take before the scan fails with `clone_timeout`."})
    max_repo_files: int = field(default=200_000, metadata={
        "doc": "Most files a checkout may hold (`too_many_files`)."})
    max_repo_bytes: int = field(default=2 * 1024**3, metadata={
        "doc": "Most bytes a clone may take (`repository_too_large`)."})
    tool_timeout: int = field(default=600, metadata={
        "doc": "Seconds one scanner may run before it is killed and reported as a tool error."})
    tool_output_max_lines: int = field(default=5000, metadata={
        "doc": "Output lines per tool streamed as `log` events; the rest are counted, not sent."})
    tool_parallelism: int = field(default=2, metadata={
        "doc": "How many scanners of one scan run at the same time."})
    ws_block_ms: int = field(default=1000, metadata={
        "doc": "Milliseconds one blocking stream read waits; kept below the Redis socket timeout."})
    log_format: str = field(default="console", metadata={
        "doc": "`console` for humans or `json` for one JSON object per line."})
    log_level: str = field(default="INFO", metadata={"doc": "Python logging level."})

    # -- security and reliability: authentication, limits, crash recovery, retention --
    open_service_endpoints: bool = field(default=False, metadata={
        "doc": "Serve `/stats` and `/metrics` without an API key (e.g. to a scraper on a private network).",
        "parse": _bool})
    stream_token_seconds: int = field(default=60, metadata={
        "doc": "Lifetime of a single-use WebSocket token from `POST /v1/stream-tokens`."})
    rate_limit_per_minute: int = field(default=600, metadata={
        "doc": "Requests one API key may make per minute (token bucket held in Redis, shared by replicas)."})
    rate_limit_burst: int = field(default=120, metadata={
        "doc": "Requests one API key may make at once before the per-minute rate applies."})
    max_queued_per_workspace: int = field(default=100, metadata={
        "doc": "Most scans one workspace may have QUEUED; more are refused with 429 `queue_full`."})
    max_body_bytes: int = field(default=1024 * 1024, metadata={
        "doc": "Largest JSON request body accepted (413 `payload_too_large`)."})
    max_json_depth: int = field(default=32, metadata={
        "doc": "Deepest nesting of arrays and objects accepted in a JSON body (413 `json_too_deep`)."})
    max_ws_per_key: int = field(default=50, metadata={
        "doc": "Most WebSocket streams one API key may hold open at once (close code 4429 above it)."})
    ws_ping_interval: int = field(default=25, metadata={
        "doc": "Seconds between pings on an open stream; a client that does not answer is closed."})
    max_attempts: int = field(default=3, metadata={
        "doc": "Times a scan is started (first run plus restarts after a lost worker) before it fails "
               "with `attempts_exhausted`."})
    sweep_interval: int = field(default=30, metadata={
        "doc": "Seconds between sweeps for scans whose worker vanished (each worker sweeps; one at a time)."})
    admin_key_file: str = field(default="var/admin-key", metadata={
        "doc": "Where `make run` writes the admin key it creates on first start (mode 0600).", "parse": _path})

    @property
    def broker(self) -> str:
        return self.broker_url or self.redis_url

    @property
    def visibility_timeout(self) -> int:
        # A late-acked task must not be redelivered while it legitimately runs: keep the
        # broker's visibility timeout above the longest hard limit of any task.
        return max(self.scan_hard_time_limit, self.upload_hard_time_limit) + 300

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = PREFIX + f.name.upper()
            if name not in env:
                continue
            raw = env[name]
            parse: Callable[[str], Any] | None = f.metadata.get("parse")
            try:
                if parse is not None:
                    values[f.name] = parse(raw)
                elif f.type in ("int", int):
                    values[f.name] = int(raw)
                else:
                    values[f.name] = raw
            except ValueError as exc:
                raise SettingsError(f"{name}: {exc}") from exc
        settings = cls(**values)
        settings.check()
        return settings

    def __post_init__(self) -> None:
        # Paths given as defaults are relative to the working directory; resolve them once.
        for name in ("artifact_root", "work_root", "admin_key_file"):
            object.__setattr__(self, name, _path(getattr(self, name)))

    def check(self) -> None:
        if self.scan_soft_time_limit >= self.scan_hard_time_limit:
            raise SettingsError("SCAN_SOFT_TIME_LIMIT must be below SCAN_HARD_TIME_LIMIT")
        if self.upload_soft_time_limit >= self.upload_hard_time_limit:
            raise SettingsError("UPLOAD_SOFT_TIME_LIMIT must be below UPLOAD_HARD_TIME_LIMIT")
        if self.log_format not in ("console", "json"):
            raise SettingsError("LOG_FORMAT must be `console` or `json`")
        if not 100 <= self.ws_block_ms <= 4000:
            raise SettingsError("WS_BLOCK_MS must be between 100 and 4000")
        if self.tool_parallelism < 1:
            raise SettingsError("TOOL_PARALLELISM must be at least 1")
        for name in ("rate_limit_per_minute", "rate_limit_burst", "max_queued_per_workspace", "max_body_bytes",
                     "max_json_depth", "max_ws_per_key", "ws_ping_interval", "max_attempts", "sweep_interval",
                     "stream_token_seconds"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name.upper()} must be at least 1")


def markdown_table() -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for f in fields(Settings):
        default = f.default
        if isinstance(default, tuple):
            default = ",".join(default)
        if isinstance(default, bool):
            default = str(default).lower()
        rows.append(f"| `{PREFIX}{f.name.upper()}` | `{default}` | {f.metadata.get('doc', '')} |")
    return "\n".join(rows)


if __name__ == "__main__":  # pragma: no cover - documentation helper
    if "--markdown" in sys.argv:
        print(markdown_table())
