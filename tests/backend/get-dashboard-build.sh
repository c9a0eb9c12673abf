#!/bin/bash
# Fetch the real Ceph dashboard frontend build (the Angular "dist" directory) from Debian's
# ceph-mgr-dashboard package, without installing ceph.
#
# Usage: get-dashboard-build.sh [DEST]
#   DEST defaults to $REPO/.cache/dashboard-dist. On success DEST contains en-US/index.html etc.
#   and the script prints DEST on stdout. A DEST that already exists and is non-empty is kept
#   as it is, so calling this from every test run is cheap.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dest="${1:-$repo/.cache/dashboard-dist}"
package=ceph-mgr-dashboard
dist_in_package=usr/share/ceph/mgr/dashboard/frontend/dist

if [ -d "$dest" ] && [ -n "$(ls -A "$dest")" ]; then
    echo "$dest"
    exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# apt drops privileges to _apt for downloads; let it write into our directory so it does not
# fall back to an unsandboxed download with a warning.
if [ "$(id -u)" = 0 ] && id _apt >/dev/null 2>&1; then
    chown _apt "$work"
fi

download() {
    (cd "$work" && apt-get download -q "$package") >&2
}

# The package lists may be missing or stale (minimal images ship without them); refresh them
# only when the download actually fails, because apt-get update is slow and needs root.
if ! download; then
    echo "apt-get download failed; running apt-get update and retrying" >&2
    apt-get update -q >&2
    download
fi

dpkg-deb -x "$work"/"$package"_*.deb "$work/root"
if [ ! -f "$work/root/$dist_in_package/en-US/index.html" ]; then
    echo "error: $package has no $dist_in_package/en-US/index.html" >&2
    exit 1
fi

# Copy into a sibling first and rename, so an interrupted run never leaves a half-filled DEST
# that the idempotency check above would accept.
mkdir -p "$(dirname "$dest")"
partial="$dest.partial.$$"
rm -rf "$partial"
cp -a "$work/root/$dist_in_package" "$partial"
rm -rf "$dest"
mv "$partial" "$dest"
echo "$dest"
