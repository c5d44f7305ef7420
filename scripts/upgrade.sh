#!/usr/bin/env bash
# Applies a new release to a running installation, once the checkout holds it (git pull, or the
# new tree unpacked over it):
#   bash scripts/upgrade.sh [--concurrency N]
# 1. the set-up: packages, npm dependencies, the build; a new Flume in flume/pom.xml replaces
#    flume/lib whole (no jar of the old version stays on the class path), then the launcher and
#    the class-data archive are rebuilt;
# 2. the settings checked (a bad one stops here, nothing restarted), supervisor.conf re-read,
#    the API and the event listener restarted, the gateway reloaded (no connection dropped);
# 3. every agent whose command line this build renders differently (a new Flume, JVM options,
#    paths) and that runs is restarted through the API, N at a time (default 2), each batch
#    done (accepting events) before the next; stopped ones just get the new program. Agents
#    whose command line is the same keep running: their pids do not change.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '[upgrade] %s\n' "$*"; }
ctl() { supervisorctl -c supervisor.conf "$@"; }
concurrency=2
while [ $# -gt 0 ]; do
  case "$1" in
    --concurrency) concurrency=${2:-}; shift 2 ;;
    *) echo "usage: bash scripts/upgrade.sh [--concurrency N]" >&2; exit 2 ;;
  esac
done
[[ "$concurrency" =~ ^[1-9][0-9]{0,2}$ ]] || { echo "upgrade: --concurrency must be 1-999" >&2; exit 2; }
if ! ctl pid >/dev/null 2>&1; then
  say "supervisord does not run here: bash scripts/up.sh starts the service on the new build"
  exit 1
fi
# STATE_DIR as up.sh found it: the checkout's own link, read one hop (never resolved through links
# inside the state, which the service's user can change). The node tools run below act as the
# state's owner by themselves when root runs them (src/store/state-owner.ts), so nothing in the
# state (settings.env included) is read or written as root.
if [ -z "${STATE_DIR:-}" ] && [ -L var ]; then export STATE_DIR; STATE_DIR=$(dirname "$(readlink var)"); fi
# The URLs are data: passed to the probes as arguments, never pasted into their program text.
if ! mapfile -t urls < <(node dist/cli/settings.js urls) || [ ${#urls[@]} -lt 1 ]; then
  say "the settings do not pass the checks (above): nothing was changed"
  exit 2
fi
url=${urls[0]}
version() { node -e 'fetch(process.argv[1] + "/version").then((r) => r.json()).then((v) => console.log(v.version + " (Flume " + v.flume + ")"), () => console.log("unknown"))' "$url"; }
ready() { node -e 'fetch(process.argv[1] + "/readyz").then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$url"; }
before=$(version)

bash scripts/setup.sh | sed 's/^/[upgrade] /'
if ! node dist/cli/gateway-config.js >/dev/null; then
  say "the settings do not pass this build's checks (above): nothing was restarted"
  exit 2
fi
ctl update >/dev/null
ctl restart api agent-events >/dev/null
ctl signal HUP gateway >/dev/null
for _ in $(seq 1 60); do
  if ready; then break; fi
  sleep 1
done
after=$(version)
say "API and event listener restarted, gateway reloaded: $before -> $after"

report=$(node dist/cli/programs.js --write)
mapfile -t restart < <(node -e "const r=JSON.parse(process.argv[1]); for (const c of r.changed) if (c.running && c.desired==='running') console.log(c.table)" "$report")
rewritten=$(node -pe "JSON.parse(process.argv[1]).changed.filter(c=>c.rewritten).length" "$report")
unchanged=$(node -pe "JSON.parse(process.argv[1]).unchanged" "$report")
say "agents: ${#restart[@]} to restart (their command line or flume.conf changed), $rewritten stopped ones given the new program, $unchanged unchanged (not restarted)"
if [ ${#restart[@]} -gt 0 ]; then
  token=$(node dist/cli/token.js --role operator --ttl 2h --sub upgrade)
  failed=0
  for ((i = 0; i < ${#restart[@]}; i += concurrency)); do
    batch=$(IFS=,; echo "${restart[*]:i:concurrency}")
    say "restarting $batch"
    FLUME_API_URL=$url FLUME_TOKEN=$token node dist/cli/flumectl.js bulk restart --tables "$batch" --concurrency "$concurrency" | sed 's/^/[upgrade]   /' || failed=1
  done
  if [ $failed = 1 ]; then
    say "some agents did not come back (above): see GET /v1/api/fleet and each one's log"
    exit 4
  fi
fi
say "done"
