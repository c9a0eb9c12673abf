#!/usr/bin/env bash
# Runs h2front in front of the bundled demo dashboard (a CherryPy stand-in serving the real Ceph
# dashboard frontend from Debian's ceph-mgr-dashboard package). Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-deps.sh
dist=$(tests/backend/get-dashboard-build.sh)
[ -d build ] || meson setup build -Dbuildtype=release
ninja -C build >/dev/null

/usr/bin/python3 tests/backend/dashboard.py --host 127.0.0.1 --port 8090 --dist "$dist" &
backend=$!
trap 'kill $backend 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 50); do
  curl -s -o /dev/null http://127.0.0.1:8090/ && break
  sleep 0.2
done

echo
echo "  h2front: open https://localhost:8443/ (demo login: admin / admin)"
echo "  the certificate is self-signed and generated at start; Ctrl-C stops both"
echo
build/src/h2front -c config/h2front.yaml
