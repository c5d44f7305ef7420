#!/usr/bin/env bash
# The README's second command (npm test): same set-up as the first, then the whole suite on
# real parts: Redis, a supervisord per test file (in a temp dir), real Flume agents.
# Extra arguments go to vitest (e.g. npm test -- test/scenarios/lifecycle). The pure tier alone,
# in seconds and without set-up: npm run test:unit.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '[test] %s\n' "$*"; }

source scripts/lib.sh

tmp=$(mktemp -d)
redis_pid=
cleanup() {
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

if [ -z "${TEST_REDIS_URL:-}" ] && ! redis_answers 127.0.0.1 6379; then
  WITH_HDFS=1 NEED_TEST_SERVERS=1 NEED_CHROMIUM=1 NEED_PROMTOOL=1 NEED_REDIS_SERVER=1 NEED_ETCD=1 bash scripts/setup.sh
  port=6390
  say "no Redis on 127.0.0.1:6379: starting a throwaway one on $port"
  redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --dir "$tmp" >"$tmp/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 1 50); do redis_answers 127.0.0.1 "$port" && break; sleep 0.1; done
  export TEST_REDIS_URL="redis://127.0.0.1:$port"
else
  WITH_HDFS=1 NEED_TEST_SERVERS=1 NEED_CHROMIUM=1 NEED_PROMTOOL=1 NEED_REDIS_SERVER=1 NEED_ETCD=1 bash scripts/setup.sh
fi

# Types first, of the tests and benches too (vitest itself does not check them).
say "type-checking src/, test/ and bench/"
./node_modules/.bin/tsc -p tsconfig.check.json

set +e
started=$(date +%s)
./node_modules/.bin/vitest run --reporter=default --reporter=json --outputFile.json="$tmp/results.json" "$@"
rc=$?
set -e
wall=$(( $(date +%s) - started ))
# Counts, wall time and the slowest ten files; a whole run that passed keeps its timings in
# test/timings.json (the order files start in next time: slowest first).
whole=1
for a in "$@"; do case "$a" in -*) ;; *) whole=0 ;; esac; done
./node_modules/.bin/tsx test/tiers/report.ts "$tmp/results.json" "$wall" "$whole" || true
exit $rc
