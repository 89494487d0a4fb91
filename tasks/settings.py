"""Settings, read once from ``CERTUS_ASSURANCE_*`` environment variables into one typed object.

Every setting, its default and its meaning is listed in ``SETTINGS`` below; the README's settings
table is generated from the same list (``python -m tasks.settings --markdown``), so docs and code
cannot drift apart.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from tasks.manifest_s3 import allow_list as s3_allow_list

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


def _database_url(raw: str) -> str:
    """A ``sqlite:///relative/path`` made absolute (like the other paths); any other URL as given."""
    raw = raw.strip()
    prefix = "sqlite:///"
    if raw.startswith(prefix):
        path, sep, query = raw[len(prefix):].partition("?")
        if path and path != ":memory:" and not path.startswith("/"):
            return f"{prefix}{_path(path)}{sep}{query}"
    return raw


@dataclass(frozen=True)
class Settings:
    redis_url: str = field(default="redis://127.0.0.1:6379/0", metadata={
        "doc": "Redis for scan state and event streams (redis://, rediss://, unix:// or sentinel://). "
               "`make run` starts an embedded Redis when this is unset."})
    broker_url: str = field(default="", metadata={
        "doc": "Celery broker URL; empty means the same as REDIS_URL."})
    artifact_root: str = field(default="var/artifacts", metadata={
        "doc": "Folder holding one bundle folder per scan.", "parse": _path})
    work_root: str = field(default="var/work", metadata={
        "doc": "Scratch folder for clones and tool runs; each scan's workspace is removed when it ends.",
        "parse": _path})
    database_url: str = field(default="sqlite:///var/certus.db", repr=False, metadata={
        "doc": "SQL database holding history: findings across scans and their triage. The default, a SQLite file "
               "under `var/` in WAL mode, needs no server and serves the processes of one machine; when they run on "
               "several (compose, production) use PostgreSQL, `postgresql://user:pass@host/db`. Every API and worker "
               "process must use the same one. `python -m tasks.db upgrade` creates or migrates its schema "
               "(docs/findings.md).", "parse": _database_url})
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
        "doc": "Allow `file://` git URLs and local paths as git sources (each must lie inside "
               "ALLOWED_SOURCE_ROOTS).", "parse": _bool})
    git_allowed_hosts: tuple[str, ...] = field(default=(), metadata={
        "doc": "Comma-separated hosts allowed even when they resolve to loopback or private "
               "addresses (e.g. an internal git server).", "parse": _list})
    allowed_source_roots: tuple[str, ...] = field(default=(), metadata={
        "doc": "Comma-separated folders under which `directory` and `archive` sources, and local git "
               "repositories, may lie (links followed). Empty: none may.",
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
    # The sandbox every scanner and every clone runs in (see docs/security.md, "Sandbox").
    sandbox: str = field(default="bubblewrap", metadata={
        "doc": "`bubblewrap`: every scanner and clone runs in a bubblewrap sandbox (the checkout read-only, "
               "no network for scanners, an unprivileged user, resource limits); a worker that cannot "
               "create it refuses scans (`sandbox_unavailable`). `off` runs tools unconfined: **for "
               "development on trusted code only, never on a service that scans others' repositories.**"})
    sandbox_uid: int = field(default=65534, metadata={
        "doc": "User id tools run as when the worker runs as root (a worker that is not root runs them "
               "as itself). Never 0."})
    sandbox_gid: int = field(default=65534, metadata={
        "doc": "Group id tools run as when the worker runs as root. Never 0."})
    sandbox_cpu_seconds: int = field(default=1800, metadata={
        "doc": "CPU seconds one tool run may use (all its threads together) before it is killed."})
    sandbox_memory_bytes: int = field(default=8 * 1024**3, metadata={
        "doc": "Address space one tool process may map."})
    sandbox_file_bytes: int = field(default=1024**3, metadata={
        "doc": "Largest file one tool may write."})
    sandbox_output_bytes: int = field(default=2 * 1024**3, metadata={
        "doc": "Most bytes one tool may write to its output folder, all files together; past it the tool is "
               "stopped and reported as a tool error."})
    sandbox_max_processes: int = field(default=1024, metadata={
        "doc": "Most processes the sandbox's user may have at once (a fork without bound stops there)."})
    sandbox_max_open_files: int = field(default=4096, metadata={
        "doc": "Most files one tool process may hold open."})
    sandbox_tmp_bytes: int = field(default=512 * 1024**2, metadata={
        "doc": "Size of each sandbox's private `/tmp` (memory-backed)."})
    ws_block_ms: int = field(default=1000, metadata={
        "doc": "Milliseconds one blocking stream read waits; kept below the Redis socket timeout."})
    log_format: str = field(default="console", metadata={
        "doc": "`console` for humans or `json` for one JSON object per line."})
    log_level: str = field(default="INFO", metadata={"doc": "Python logging level."})
    # Sources: git credentials, uploads and archive limits.
    git_credentials_file: str = field(default="", metadata={
        "doc": "JSON file mapping a workspace id (or `*` for every workspace) to git credentials: "
               "`{\"username\", \"token\", \"hosts\": [...]}` for https/http sources and/or "
               "`{\"ssh_key\": \"/path/to/key\", \"hosts\": [...]}` for ssh sources; `hosts` limits "
               "where they may be used. Read by workers at each clone; never echoed."})
    git_ssh_known_hosts: str = field(default="", metadata={
        "doc": "known_hosts file for ssh sources: when set, ssh trusts only the host keys in it. "
               "Empty: the worker user's own known_hosts. Either way an unknown host key fails the "
               "clone (`git_host_key_unverified`); ssh never prompts."})
    git_username: str = field(default="", metadata={
        "doc": "Service-wide git username for https/http sources (used with GIT_TOKEN)."})
    git_token: str = field(default="", repr=False, metadata={
        "doc": "Service-wide git token, sent only to the hosts in GIT_TOKEN_HOSTS; a workspace "
               "entry in GIT_CREDENTIALS_FILE takes precedence. Never echoed."})
    git_token_hosts: tuple[str, ...] = field(default=(), metadata={
        "doc": "Comma-separated hosts (host or host:port) that may receive GIT_TOKEN.", "parse": _list})
    archives_root: str = field(default="var/uploads", metadata={"alias": "UPLOADS_ROOT",
        "doc": "Folder where `POST /v1/security-scans/upload-archive` stores archives; API replicas and "
               "workers must share it.", "parse": _path})
    archive_retention_seconds: int = field(default=7 * 24 * 3600, metadata={"alias": "UPLOAD_RETENTION_SECONDS",
        "doc": "Uploaded archives older than this are removed by `python -m workers.retention`, unless a "
               "queued or running scan names them."})
    archive_file_max_bytes: int = field(default=256 * 1024**2, metadata={"alias": "UPLOAD_MAX_BYTES",
        "doc": "Largest archive `upload-archive` accepts (`payload_too_large`)."})
    archive_max_bytes: int = field(default=1024**3, metadata={
        "doc": "Most bytes an archive source may expand to (`archive_too_large`)."})
    archive_max_ratio: int = field(default=200, metadata={
        "doc": "Most times an archive may expand over its own size (`archive_ratio_exceeded`)."})

    # -- Signing (cosign-compatible key pair) ---------------------------------------------------
    cosign_key_ref: str = field(default="", metadata={
        "doc": "Path (or `file://` path) of the service's `cosign.key` (encrypted as `cosign "
               "generate-key-pair` writes it; password in `COSIGN_PASSWORD`). `cosign.pub` beside it "
               "must match when present. Empty: a key pair is generated on first use in SIGNING_KEY_DIR."})
    signing_key_dir: str = field(default="var/keys", metadata={
        "doc": "Where the generated `cosign.key` and `cosign.pub` live when COSIGN_KEY_REF is empty. "
               "Every worker must see the same folder (or set COSIGN_KEY_REF) so all bundles share one key.",
        "parse": _path})
    # -- Object storage (S3) ----------------------------------------------------------------------
    s3_endpoint_url: str = field(default="", metadata={
        "doc": "S3 endpoint URL (e.g. MinIO or moto); empty means AWS for `s3://` manifests, and for uploads a "
               "filesystem store under DATALAKE_ROOT with the same layout. Credentials come from the usual "
               "`AWS_*` variables."})
    s3_region: str = field(default="us-east-1", metadata={"doc": "S3 region name."})
    # -- Manifests: where they may come from and how they are verified --------------------------
    manifest_verification_key_ref: str = field(default="", metadata={
        "doc": "Path (or `file://` path) of the PEM public key (a `cosign.pub`) that manifest signatures "
               "are checked against. When set, every signature that comes with a manifest is verified."})
    manifest_verification_required: bool = field(default=False, metadata={
        "doc": "Refuse every manifest (inline, path or URI) that has no valid signature by "
               "MANIFEST_VERIFICATION_KEY_REF (`manifest_signature_missing` / `manifest_signature_invalid`).",
        "parse": _bool})
    manifest_allowed_hosts: tuple[str, ...] = field(default=(), metadata={
        "doc": "Comma-separated hosts (`https://` or `oci://`) allowed for manifest URIs even when they resolve "
               "to loopback or private addresses (GIT_ALLOWED_HOSTS are allowed too).", "parse": _list})
    manifest_file_roots: tuple[str, ...] = field(default=(), metadata={
        "doc": "Comma-separated folders under which `file://` manifest URIs may lie; empty refuses `file://`.",
        "parse": _path_list})
    manifest_ca_bundle: str = field(default="", metadata={
        "doc": "PEM CA bundle for TLS to manifest hosts and registries; empty uses the system's trust store."})
    manifest_max_bytes: int = field(default=1024 * 1024, metadata={
        "doc": "Largest manifest (and signature) accepted, in bytes (`manifest_too_large`)."})
    manifest_fetch_timeout: int = field(default=30, metadata={
        "doc": "Seconds one manifest download (each HTTP request) may take."})
    manifest_oci_plain_http: tuple[str, ...] = field(default=(), metadata={
        "doc": "Comma-separated registries (`host:port`) reached over plain HTTP instead of HTTPS.",
        "parse": _list})
    manifest_oci_username: str = field(default="", metadata={
        "doc": "User name for pulling manifests from OCI registries (basic or token auth); empty: anonymous."})
    manifest_oci_password: str = field(default="", repr=False, metadata={
        "doc": "Password or token for MANIFEST_OCI_USERNAME."})
    manifest_oci_credential_hosts: tuple[str, ...] = field(default=(), metadata={
        "doc": "Comma-separated registries (`host[:port]`) that MANIFEST_OCI_USERNAME/PASSWORD belong to: they are "
               "sent to these registries (and their token realms) only. Empty: they are sent to no registry and "
               "every pull is anonymous.", "parse": _list})
    manifest_oci_token_realms: tuple[str, ...] = field(default=(), metadata={
        "doc": "Comma-separated token services (`host[:port]`) besides the registry itself that may receive "
               "MANIFEST_OCI_USERNAME/PASSWORD when a registry of MANIFEST_OCI_CREDENTIAL_HOSTS names them as its "
               "token realm (e.g. `auth.docker.io`).", "parse": _list})
    manifest_s3_allowed: tuple[str, ...] = field(default=(), metadata={
        "doc": "Comma-separated `bucket/prefix` entries (or `workspace=bucket/prefix`, for that workspace only) "
               "that `s3://` manifests and signatures may be read from; a prefix is a folder (`bucket` alone: the "
               "whole bucket). Empty refuses `s3://` manifests (`manifest_source_not_allowed`).", "parse": _list})
    # -- Uploads: Certus-Trust gate, S3 raw -> golden, OCI registry ------------------------------
    trust_base_url: str = field(default="", metadata={
        "doc": "Certus-Trust base URL (`https://...`); empty means the embedded Trust policy runs in the worker."})
    trust_timeout: int = field(default=15, metadata={
        "doc": "Seconds a call to a remote Trust may take; a timeout is a denial (fail closed)."})
    trust_ca_bundle: str = field(default="", metadata={
        "doc": "CA bundle file for the remote Trust's TLS certificate; empty means the system store. "
               "TLS verification is never switched off."})
    trust_key_dir: str = field(default="var/trust", metadata={
        "doc": "Folder holding the embedded Trust's proof-signing key (generated on first use).",
        "parse": _path})
    trust_signers_basic: tuple[str, ...] = field(default=("certus-assurance",), metadata={
        "doc": "Signer identities the embedded Trust accepts for the `basic` tier.", "parse": _list})
    trust_signers_verified: tuple[str, ...] = field(default=("certus-assurance",), metadata={
        "doc": "Signer identities the embedded Trust accepts for the `verified` tier.", "parse": _list})
    trust_max_clock_skew: int = field(default=300, metadata={
        "doc": "Seconds an upload request's signature timestamp may differ from the Trust's clock."})
    upload_signer: str = field(default="certus-assurance", metadata={
        "doc": "Signer identity the service names in upload requests when the client names none."})
    upload_max_retries: int = field(default=5, metadata={
        "doc": "Retries of one publish task after a transient error (then `upload_failed`)."})
    upload_retry_backoff: int = field(default=5, metadata={
        "doc": "Seconds before the first retry of a publish task; doubled on each retry (capped at 300)."})
    s3_path_style: bool = field(default=True, metadata={
        "doc": "Path-style S3 addressing (`endpoint/bucket/key`) instead of virtual-hosted style.",
        "parse": _bool})
    datalake_root: str = field(default="var/datalake", metadata={
        "doc": "Folder of the filesystem object store used when S3_ENDPOINT_URL is empty "
               "(`{root}/{bucket}/{key}`).", "parse": _path})
    datalake_raw_bucket: str = field(default="certus-raw", metadata={"doc": "Bucket receiving staged bundle files."})
    datalake_raw_prefix: str = field(default="security-scans", metadata={"doc": "Key prefix in the raw bucket."})
    datalake_golden_bucket: str = field(default="certus-golden", metadata={
        "doc": "Bucket receiving verified, promoted bundle files."})
    datalake_golden_prefix: str = field(default="security-scans", metadata={
        "doc": "Key prefix in the golden bucket."})
    registry: str = field(default="", metadata={
        "doc": "OCI registry `host[:port]` the bundle is pushed to; empty: an OCI image layout "
               "folder under OCI_LAYOUT_ROOT."})
    registry_repository: str = field(default="certus/security-scans", metadata={
        "doc": "Repository in the registry; the tag is the scan's test_id."})
    registry_plain_http: bool = field(default=False, metadata={
        "doc": "Talk plain HTTP to the registry (loopback/test registries); HTTPS otherwise.", "parse": _bool})
    registry_username: str = field(default="", metadata={"doc": "Registry user (basic or token auth)."})
    registry_password: str = field(default="", repr=False, metadata={"doc": "Registry password or token."})
    registry_token_realms: tuple[str, ...] = field(default=(), metadata={
        "doc": "Comma-separated token services (`host[:port]`) besides REGISTRY itself that may receive "
               "REGISTRY_USERNAME/PASSWORD when the registry names them as its token realm.", "parse": _list})
    registry_ca_bundle: str = field(default="", metadata={
        "doc": "CA bundle file for an HTTPS registry; empty means the system store."})
    oci_layout_root: str = field(default="var/oci", metadata={
        "doc": "Folder of the OCI image layout written when REGISTRY is empty.", "parse": _path})

    # -- Operations: Redis in production, queues, metrics, replicas --------------------------
    redis_sentinel_master: str = field(default="", metadata={
        "doc": "Sentinel service name of the Redis master; required when REDIS_URL or BROKER_URL is a "
               "`sentinel://` URL (`sentinel://:PASSWORD@HOST:26379/0;sentinel://:PASSWORD@HOST2:26379/0`, "
               "the password being the Redis master's)."})
    redis_sentinel_password: str = field(default="", metadata={
        "doc": "Password of the Sentinels themselves (`requirepass` in sentinel.conf); empty when they "
               "need none."})
    redis_sentinel_tls: bool = field(default=False, metadata={
        "doc": "Speak TLS to the Sentinels and to the master they name (with the REDIS_TLS_* files), for "
               "`sentinel://` URLs.", "parse": _bool})
    redis_tls_ca_file: str = field(default="", metadata={
        "doc": "CA bundle that signs the Redis server certificate, for `rediss://` URLs (and Sentinels "
               "with REDIS_SENTINEL_TLS); empty means the system's CAs."})
    redis_tls_cert_file: str = field(default="", metadata={
        "doc": "Client certificate for Redis TLS, when the server asks for one (`tls-auth-clients yes`)."})
    redis_tls_key_file: str = field(default="", metadata={
        "doc": "Private key of REDIS_TLS_CERT_FILE."})
    redis_tls_check_hostname: bool = field(default=True, metadata={
        "doc": "Check that the Redis server certificate names the host in the URL.", "parse": _bool})
    scan_queue_per_profile: bool = field(default=False, metadata={
        "doc": "Send each scan to the queue `scans.<profile>` instead of `scans`, so pools can be "
               "dedicated to profiles (start workers with `--queues scans.thorough`).", "parse": _bool})
    replica_id: str = field(default="", metadata={
        "doc": "Name of this API replica, sent in the `X-Certus-Replica` response header; empty means "
               "the host name and process id."})
    worker_metrics_port: int = field(default=0, metadata={
        "doc": "Port on which a Celery worker serves `/metrics` (0: none). Metrics are shared between a "
               "process's children through PROMETHEUS_MULTIPROC_DIR."})
    worker_metrics_bind: str = field(default="127.0.0.1", metadata={
        "doc": "Address the worker's `/metrics` listens on (`0.0.0.0` in a container)."})
    plugins: tuple[str, ...] = field(default=(), metadata={
        "doc": "Comma-separated Python modules the API and every worker import at start; each registers "
               "source kinds (docs/sources.md). Imported by the API too, so they must not import workers/.",
        "parse": _list})
    worker_plugins: tuple[str, ...] = field(default=(), metadata={
        "doc": "Comma-separated Python modules every worker (never the API) imports at start, after PLUGINS; "
               "each registers publish destinations (docs/uploads.md).", "parse": _list})
    # -- dependency scanning (OSV) ---------------------------------------------------------------
    osv_db_path: str = field(default="var/osv", metadata={
        "doc": "Folder of the local OSV database (`<Ecosystem>-all.zip` dumps); filled by "
               "`python -m workers.osv refresh`. The `osv` scanner is skipped while it is empty.",
        "parse": _path})
    osv_source_url: str = field(default="https://osv-vulnerabilities.storage.googleapis.com", metadata={
        "doc": "Where `python -m workers.osv refresh` downloads `<Ecosystem>/all.zip` from."})
    osv_ecosystems: tuple[str, ...] = field(default=("PyPI", "npm"), metadata={
        "doc": "Comma-separated OSV ecosystems that `refresh` downloads.", "parse": _list})

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
    def broker_is_store(self) -> bool:
        """Whether Celery's broker is the Redis that holds the scans (the usual set-up)."""
        return self.broker == self.redis_url

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
            alias = PREFIX + f.metadata["alias"] if "alias" in f.metadata else None
            if alias is not None and alias in env:
                if name in env and env[name] != env[alias]:
                    raise SettingsError(f"{alias} is the old name of {name}; they disagree, set only {name}")
                if name not in env:
                    warnings.warn(f"{alias} is deprecated; name it {name}", FutureWarning, stacklevel=2)
                    name = alias
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
        for name in ("artifact_root", "work_root", "archives_root", "signing_key_dir", "osv_db_path",
                     "trust_key_dir", "datalake_root", "oci_layout_root", "admin_key_file"):
            object.__setattr__(self, name, _path(getattr(self, name)))
        object.__setattr__(self, "database_url", _database_url(self.database_url))

    def check(self) -> None:
        if self.scan_soft_time_limit >= self.scan_hard_time_limit:
            raise SettingsError("SCAN_SOFT_TIME_LIMIT must be below SCAN_HARD_TIME_LIMIT")
        if self.upload_soft_time_limit >= self.upload_hard_time_limit:
            raise SettingsError("UPLOAD_SOFT_TIME_LIMIT must be below UPLOAD_HARD_TIME_LIMIT")
        if self.database_url.partition(":")[0].partition("+")[0] not in ("sqlite", "postgresql"):
            raise SettingsError("DATABASE_URL must be a sqlite:/// or postgresql:// URL")
        if self.log_format not in ("console", "json"):
            raise SettingsError("LOG_FORMAT must be `console` or `json`")
        if not 100 <= self.ws_block_ms <= 4000:
            raise SettingsError("WS_BLOCK_MS must be between 100 and 4000")
        if self.trust_base_url and not self.trust_base_url.startswith("https://"):
            raise SettingsError("TRUST_BASE_URL must be an https:// URL (TLS is verified)")
        if self.upload_max_retries < 0 or self.upload_retry_backoff < 0:
            raise SettingsError("UPLOAD_MAX_RETRIES and UPLOAD_RETRY_BACKOFF must not be negative")
        if self.tool_parallelism < 1:
            raise SettingsError("TOOL_PARALLELISM must be at least 1")
        if self.sandbox not in ("bubblewrap", "off"):
            raise SettingsError("SANDBOX must be `bubblewrap` or `off`")
        if self.sandbox_uid <= 0 or self.sandbox_gid <= 0:
            raise SettingsError("SANDBOX_UID and SANDBOX_GID must be above 0 (tools never run as root)")
        for name in ("sandbox_cpu_seconds", "sandbox_memory_bytes", "sandbox_file_bytes", "sandbox_output_bytes",
                     "sandbox_max_processes",
                     "sandbox_max_open_files", "sandbox_tmp_bytes"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name.upper()} must be at least 1")
        if self.git_token and not self.git_token_hosts:
            raise SettingsError("GIT_TOKEN needs GIT_TOKEN_HOSTS (the hosts it may be sent to)")
        if self.git_ssh_known_hosts and not self.git_ssh_known_hosts.startswith("/"):
            raise SettingsError("GIT_SSH_KNOWN_HOSTS must be an absolute path")
        if self.manifest_verification_required and not self.manifest_verification_key_ref:
            raise SettingsError("MANIFEST_VERIFICATION_REQUIRED needs MANIFEST_VERIFICATION_KEY_REF")
        try:
            s3_allow_list(self.manifest_s3_allowed)
        except ValueError as exc:
            raise SettingsError(f"MANIFEST_S3_ALLOWED: {exc}") from exc
        if self.manifest_max_bytes < 1 or self.manifest_fetch_timeout < 1:
            raise SettingsError("MANIFEST_MAX_BYTES and MANIFEST_FETCH_TIMEOUT must be positive")
        for url in (self.redis_url, self.broker):
            if url.startswith("sentinel://") and not self.redis_sentinel_master:
                raise SettingsError("REDIS_SENTINEL_MASTER is required with a sentinel:// URL")
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
        doc = f.metadata.get("doc", "")
        if "alias" in f.metadata:
            doc += f" Deprecated old name: `{PREFIX}{f.metadata['alias']}`."
        rows.append(f"| `{PREFIX}{f.name.upper()}` | `{default}` | {doc} |")
    return "\n".join(rows)


if __name__ == "__main__":  # pragma: no cover - documentation helper
    if "--markdown" in sys.argv:
        print(markdown_table())
