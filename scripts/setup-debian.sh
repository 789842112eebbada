#!/usr/bin/env bash
# Installs the Debian packages the tests need, only those missing, so that
# `make test` runs on a fresh machine. Keep this a plain package list: one
# line per package, with the issue/test that needs it.
set -euo pipefail

packages=(
  python3        # executes the generated Triton Python models (pkg/triton tests)
  python3-numpy  # the only non-stdlib module the stock Triton Python backend has
  debootstrap    # make image: the Debian root of the container image (issue 15)
  umoci          # deploy/image test: unpacks the OCI archive and derives its runtime config
  iproute2       # deploy/image test: network namespace and veth pair
  haproxy        # deploy/haproxy test: the load balancer in front of rolling replicas
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && { echo "debian packages already installed: ${packages[*]}"; exit 0; }

command -v apt-get >/dev/null || { echo "setup-debian: apt-get not found; install ${missing[*]} by hand" >&2; exit 1; }
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
echo "installing ${missing[*]} ..."
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 update -qq
"${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}"
