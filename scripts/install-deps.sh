#!/usr/bin/env bash
# Installs everything h2front needs to build, run its demo and run its tests, from Debian 12's
# packages only. Safe to run again: apt-get skips what is there.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

BUILD="build-essential meson ninja-build pkg-config clang libh2o-dev libuv1-dev libssl-dev libyaml-dev zlib1g-dev libbrotli-dev libhts-dev"
RUN="openssl ca-certificates python3 python3-cherrypy3"
TEST="valgrind curl nghttp2-client python3-h2 python3-pytest python3-brotli chromium nginx-light haproxy h2o nghttp2-proxy brotli python3-matplotlib nodejs iproute2 linux-perf"

packages="$BUILD $RUN"
[ "${1:-}" = "--test" ] && packages="$packages $TEST"

missing=$(dpkg-query -W -f='${Package} ${Status}\n' $packages 2>/dev/null | awk '$4 != "installed" {print $1}' || true)
for p in $packages; do dpkg-query -W "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$(echo $missing)" ]; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends $packages
fi
