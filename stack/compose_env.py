"""Prints compose/.env.example: every setting with its default and meaning, generated from
``tasks.settings.Settings`` so it cannot drift (a test compares the file with this output).

``python -m stack.compose_env > compose/.env.example`` (``make compose-env``).
"""

from __future__ import annotations

import textwrap
from dataclasses import fields

from tasks.settings import PREFIX, Settings

HEADER = """\
# Certus Assurance: settings for compose/docker-compose.yml. Copy to compose/.env and edit.
# Generated from tasks/settings.py by `make compose-env`; do not edit by hand.
#
# Secrets are never baked into the image: set them here (or inject them from your secret store)
# and keep compose/.env out of version control.

# -- Secrets of the stack itself (required; no defaults) ----------------------------------------
# Password of the bundled Redis (requirepass); the services' REDIS_URL is built from it.
REDIS_PASSWORD=
# Password of the bundled PostgreSQL (the findings store); the services' DATABASE_URL is built from it.
POSTGRES_PASSWORD=
# Flower's login, as user:password.
FLOWER_BASIC_AUTH=
# Root credentials of the bundled S3-compatible store (MinIO).
MINIO_ROOT_USER=
MINIO_ROOT_PASSWORD=

# -- Stack shape (defaults shown) -----------------------------------------------------------------
# Image to run (built from compose/Dockerfile when absent).
CERTUS_IMAGE=certus-assurance:latest
# gunicorn processes per API replica; scale replicas with `up --scale api=N`.
API_PROCESSES=2
# Pool processes per scan worker and per upload worker; scale workers with --scale.
SCAN_CONCURRENCY=2
UPLOAD_CONCURRENCY=2
# Queues the scan workers take (e.g. scans,scans.smoke with SCAN_QUEUE_PER_PROFILE=true).
SCAN_QUEUES=scans
# Where the load balancer, Flower and Prometheus listen on the host.
LB_BIND=127.0.0.1
LB_PORT=8080
FLOWER_BIND=127.0.0.1
FLOWER_PORT=5555
PROMETHEUS_BIND=127.0.0.1
PROMETHEUS_PORT=9090

# -- Service settings (CERTUS_ASSURANCE_*; defaults shown) -----------------------------------------
# docker-compose.yml sets REDIS_URL, ARTIFACT_ROOT, WORK_ROOT, LOG_FORMAT and the addresses of the
# bundled S3 store, registry and Trust service for the containers; the values below apply to the rest.
"""


def _value(default: object) -> str:
    if isinstance(default, tuple):
        return ",".join(str(d) for d in default)
    if isinstance(default, bool):
        return str(default).lower()
    return str(default)


def render() -> str:
    lines = [HEADER.rstrip("\n")]
    for f in fields(Settings):
        lines.append("")
        doc = f.metadata.get("doc", "")
        lines += ["# " + line for line in textwrap.wrap(doc, 96)]
        lines.append(f"{PREFIX}{f.name.upper()}={_value(f.default)}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover - generator
    print(render(), end="")
