#!/usr/bin/env bash
# Applies a changed settings file (settings.env, or SETTINGS_FILE) to a running installation:
# checks it first (a bad value changes nothing and names the setting), then restarts only what
# reads it: the API and the event listener, and the gateway re-reads its rendered config (HUP,
# no connection dropped). Agents are not touched: their pids stay as they were.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '[settings] %s\n' "$*"; }
ctl() { supervisorctl -c supervisor.conf "$@"; }

if ! ctl pid >/dev/null 2>&1; then
  say "supervisord does not run here: start the service with bash scripts/up.sh (it reads the file too)"
  exit 1
fi
# Checks every setting and renders the gateway's config (exits non-zero, naming the setting, if
# one is bad); run by root, it acts as the state's owner (src/store/state-owner.ts).
if [ -z "${STATE_DIR:-}" ] && [ -L var ]; then export STATE_DIR; STATE_DIR=$(dirname "$(readlink var)"); fi
if ! node dist/cli/gateway-config.js >/dev/null; then
  say "nothing was restarted"
  exit 2
fi
ctl restart api agent-events >/dev/null
ctl signal HUP gateway >/dev/null
say "applied: API and event listener restarted, gateway reloaded; agents untouched"
