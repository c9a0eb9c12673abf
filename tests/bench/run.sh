#!/usr/bin/env bash
# h2front's benchmark in one command:
#
#   tests/bench/run.sh                       full run (5 interleaved runs of everything, about an hour)
#   tests/bench/run.sh --quick               one short run of everything (a few minutes)
#   tests/bench/run.sh --quick --smoke       a few targets, the shortest runs (CI, meson test bench_smoke)
#   tests/bench/run.sh --only idle,pageload  some scenarios (names or groups: fast, dashboard, assets)
#   tests/bench/run.sh --help                every option of tests/bench/bench.py
#
# Installs what is missing from Debian's packages (peers, h2load, Chromium, brotli, matplotlib, libh2o's
# evloop flavour for the libh2o-evloop experiment target) and
# playwright-core from npm (tests/bench/pageload/package-lock.json; no browser is downloaded),
# builds a release h2front in build-bench/ unless H2FRONT_BIN names one, and runs bench.py.
# Results: tests/bench/results/latest.{md,json,png} for a full run, tests/bench/results/quick/ for
# --quick, a temporary directory for --smoke (or --out DIR). Copy a full run's table into README.md
# with tests/bench/splice.py. Nothing else heavy should run meanwhile: CPU times per request are
# robust against other load, throughput and latency are not (disturbed runs are flagged).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)

smoke=0 quick=0 out=""
prev=""
for arg in "$@"; do
  case "$arg" in
    --smoke) smoke=1 ;;
    --quick) quick=1 ;;
    -h|--help) exec /usr/bin/python3 tests/bench/bench.py --h2front /bin/true --help ;;
  esac
  [ "$prev" = "--out" ] && out="$arg"
  prev="$arg"
done

# --- packages -------------------------------------------------------------------------------
packages="nginx-light haproxy h2o nghttp2-proxy nghttp2-client chromium brotli python3-matplotlib
          python3-cherrypy3 python3-h2 curl openssl iproute2 util-linux linux-perf libh2o-evloop-dev"
missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
node_missing=0
command -v node >/dev/null && command -v npm >/dev/null || node_missing=1
if [ -n "$missing" ] || { [ $node_missing = 1 ] && [ $smoke = 0 ]; }; then
  if [ $smoke = 1 ]; then
    echo "bench smoke: missing packages:$missing (scripts/install-deps.sh --test installs them)" >&2
    exit 1
  fi
  [ $node_missing = 1 ] && ! command -v node >/dev/null && missing="$missing nodejs npm"
  [ $node_missing = 1 ] && command -v node >/dev/null && ! command -v npm >/dev/null \
    && ! dpkg-query -W -f='${Provides}' nodejs 2>/dev/null | grep -qw npm && missing="$missing npm"
  if [ -n "$missing" ]; then
    echo "installing:$missing"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends $missing
  fi
fi

# --- the dashboard build, h2front, playwright-core ------------------------------------------
tests/backend/get-dashboard-build.sh >/dev/null

if [ -z "${H2FRONT_BIN:-}" ]; then
  # -Dwerror=false: gcc 12 at -O3 reports a false stringop-overflow in src/assets.c (sb_add).
  [ -d build-bench ] || meson setup build-bench -Dbuildtype=release -Dwerror=false >/dev/null
  ninja -C build-bench src/h2front >/dev/null
  H2FRONT_BIN="$repo/build-bench/src/h2front"
fi

if [ ! -d tests/bench/pageload/node_modules/playwright-core ] && command -v npm >/dev/null; then
  (cd tests/bench/pageload && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error) \
    || echo "npm ci failed: the page-load benchmark will be skipped" >&2
fi

# --- run --------------------------------------------------------------------------------------
# 10,000 idle connections need more than 10,000 descriptors in the client and in each server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

extra=()
if [ -z "$out" ]; then
  if [ $smoke = 1 ]; then
    out=$(mktemp -d "${TMPDIR:-/tmp}/h2front-bench-smoke.XXXXXX")
  elif [ $quick = 1 ]; then
    out="$repo/tests/bench/results/quick"
  else
    out="$repo/tests/bench/results"
  fi
  extra=(--out "$out")
fi
# bench.py runs in the background so that a SIGTERM or ^C reaching this script is passed on: the
# driver then stops its servers and still writes what it measured (marked incomplete).
/usr/bin/python3 tests/bench/bench.py --h2front "$H2FRONT_BIN" "${extra[@]}" "$@" &
driver=$!
trap 'kill -TERM $driver 2>/dev/null' TERM INT HUP
status=0
wait $driver || status=$?
if kill -0 $driver 2>/dev/null; then  # interrupted: wait for the driver to finish writing
  wait $driver || status=$?
fi
trap - TERM INT HUP
if [ $smoke = 1 ] && [ $status = 0 ] && [[ "$out" == */h2front-bench-smoke.* ]]; then
  rm -rf "$out"
fi
exit $status
