#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs, builds h2front twice (an optimised
# build, and one under AddressSanitizer + UndefinedBehaviorSanitizer with clang), and runs every
# unit and integration test against each. Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
tests/backend/get-dashboard-build.sh >/dev/null
# The browser test drives Debian's chromium with playwright-core (never a downloaded browser); node >= 20 and npm
# come with the machine, not from Debian. Without them the browser test fails and says why.
if [ ! -d tests/browser/node_modules ]; then
  if command -v npm >/dev/null; then (cd tests/browser && npm ci --no-audit --no-fund); else echo "warning: npm not found: tests/browser cannot be set up" >&2; fi
fi

run_suite() { # name, meson options...
  local dir=$1; shift
  [ -d "$dir" ] || meson setup "$dir" "$@"
  ninja -C "$dir"
  meson test -C "$dir" --print-errorlogs --num-processes 2
}

echo "== release build (gcc, warnings as errors)"
run_suite build -Dbuildtype=debugoptimized

echo "== sanitizer build (clang, ASan + UBSan)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
CC=clang run_suite build-asan -Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false

# One closing line for both builds: the test cases each runner reported (pytest's and the unit
# tests' own "N passed" lines), read back from meson's logs.
/usr/bin/python3 - build/meson-logs/testlog.json build-asan/meson-logs/testlog.json <<'PY'
import json, re, sys
passed = failed = skipped = 0
for path in sys.argv[1:]:
    for line in open(path):
        if not line.strip():
            continue
        test = json.loads(line)
        out = test.get('stdout') or ''
        counts = {k: sum(int(n) for n in re.findall(r'(\d+) %s' % k, out)) for k in ('passed', 'failed', 'skipped')}
        if counts['passed'] + counts['failed'] == 0:  # a runner that printed no count: count the test itself
            counts['passed' if test['result'] == 'OK' else 'failed'] += 1
        passed, failed, skipped = passed + counts['passed'], failed + counts['failed'], skipped + counts['skipped']
print('%d passed, %d failed, %d skipped' % (passed, failed, skipped))
PY
