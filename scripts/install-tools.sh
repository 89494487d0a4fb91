#!/usr/bin/env bash
# Installs the scanners into their own virtual environments under .tools/<name>/, one per
# requirements/tools-<name>.txt lock file (every package pinned with its hashes), so the scanners'
# dependencies never fight the service's. Re-running is cheap: a venv is rebuilt only when its
# lock file changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
shopt -s nullglob
for lock in requirements/tools-*.txt; do
  name=$(basename "$lock" .txt); name=${name#tools-}
  venv=".tools/$name"
  stamp="$venv/.lock.sha256"
  want=$(sha256sum "$lock" | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then continue; fi
  echo "installing scanners: $name"
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q --require-hashes --no-deps -r "$lock"
  echo "$want" > "$stamp"
done
