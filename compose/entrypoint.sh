#!/bin/sh
# Start every process with an empty Prometheus multiprocess folder: files left by an earlier run
# would be added to this one's counters.
set -eu
dir="${PROMETHEUS_MULTIPROC_DIR:-/tmp/metrics}"
rm -rf "$dir" && mkdir -p "$dir"
exec "$@"
