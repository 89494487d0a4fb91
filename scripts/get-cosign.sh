#!/usr/bin/env bash
# Fetches stock cosign from Debian's archive (the "trixie" suite ships cosign 2.5) and unpacks it
# into a folder, without installing anything system-wide. The interoperability tests look for
# cosign on PATH or in $CERTUS_COSIGN_DIR; this puts it where they find it by default.
#
#   scripts/get-cosign.sh [DEST]        # default DEST: .tools/cosign; prints the binary's path
set -euo pipefail
dest=${1:-.tools/cosign}
bin="$dest/usr/bin/cosign"
if [ -x "$bin" ] && "$bin" version >/dev/null 2>&1; then echo "$bin"; exit 0; fi
for tool in apt-get dpkg-deb; do
  command -v "$tool" >/dev/null || { echo "get-cosign: needs $tool (Debian or Ubuntu)" >&2; exit 1; }
done

# The machine's own mirror, whichever of the two apt source formats it uses.
mirror=""
if [ -r /etc/apt/sources.list.d/debian.sources ]; then
  mirror=$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/debian.sources | head -n1 | cut -d' ' -f1)
fi
if [ -z "$mirror" ] && [ -r /etc/apt/sources.list ]; then
  mirror=$(awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list)
fi
mirror=${mirror:-http://deb.debian.org/debian}

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/state/lists/partial" "$scratch/cache/archives/partial" "$scratch/pkgs" "$dest"
printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s trixie main\n' "$mirror" \
  > "$scratch/trixie.list"
apt_opts=(
  -o "Dir::Etc::SourceList=$scratch/trixie.list"
  -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::State::Lists=$scratch/state/lists"
  -o "Dir::Cache=$scratch/cache"
  -o "APT::Sandbox::User=root"
)
apt-get "${apt_opts[@]}" update -qq >&2
( cd "$scratch/pkgs" && apt-get "${apt_opts[@]}" download -qq cosign >&2 )
for deb in "$scratch"/pkgs/cosign_*.deb; do dpkg-deb -x "$deb" "$dest"; done
"$bin" version >/dev/null 2>&1 || { echo "get-cosign: $bin does not run here" >&2; exit 1; }
echo "$bin"
