#!/usr/bin/env bash
# The README's first command: install what is missing, then bring flume-service up under its
# own supervisord (supervisor.conf), with an embedded Redis when none is configured or answers.
#   bash scripts/up.sh               start (or apply a new build to) the service; where systemd
#                                    runs and this is root, through the flume-service unit it installs
#   bash scripts/up.sh --foreground  the same preparation, then supervisord in the foreground:
#                                    what the unit runs, and a container's entry point
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
say() { printf '[up] %s\n' "$*"; }
foreground=0
case "${1:-}" in
  --foreground) foreground=1 ;;
  '') ;;
  *) echo "usage: bash scripts/up.sh [--foreground]" >&2; exit 2 ;;
esac

source scripts/lib.sh

# The set-up first (as root: packages, npm dependencies, the build in the checkout); with no
# Redis configured or answering, the embedded one's package too.
embedded=0
if [ -z "${REDIS_URL:-}" ] && ! redis_answers 127.0.0.1 6379; then embedded=1; fi
if [ $embedded = 1 ]; then NEED_REDIS_SERVER=1 bash scripts/setup.sh; else bash scripts/setup.sh; fi

# Run as root, the service (API, gateway workers, agents, event listener, embedded Redis) runs
# as an unprivileged user: SERVICE_USER (from root's environment, never from the settings file),
# default "flume", created if missing. SERVICE_USER=root keeps root. supervisord drops to that
# user itself (-u) and owns its socket; root can still use supervisorctl and mint tokens.
# Everything in the state is that user's, so from here on root never writes, reads settings or
# runs a tool in it as root: as_service does it as that user (docs/security.md).
run_as=
svc_user=
if [ "$(id -u)" = 0 ] && [ "${SERVICE_USER:-flume}" != root ]; then
  svc_user=${SERVICE_USER:-flume}
  [[ "$svc_user" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || { say "ERROR: SERVICE_USER must be a user name (letters, digits, _ -)"; exit 2; }
  if ! id -u "$svc_user" >/dev/null 2>&1; then
    say "creating the system user $svc_user to run the service as (SERVICE_USER=root keeps root)"
    useradd --system --user-group --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin "$svc_user"
  fi
  if runuser -u "$svc_user" -- test -r "$root/dist/server.js" -a -r "$root/templates/program.conf" -a -x "$root/flume/lib"; then
    run_as=$svc_user
  else
    say "WARNING: user $svc_user cannot read $root (a parent directory is private to root): running as root."
    say "         To run as $svc_user, use a checkout in a directory others may traverse (e.g. under /srv or /opt)."
  fi
fi
as_service() { if [ -n "$run_as" ]; then runuser -u "$run_as" -- "$@"; else "$@"; fi; }

# Where the state lives (conf.d/, services/, var/, settings.env): STATE_DIR; else where the
# checkout's links point (the link itself, read one hop: never resolved through links inside the
# state, which its user can change); else, run as root, /var/lib/flume-service; else the checkout
# itself. Outside the checkout, the checkout holds links to it (supervisor.conf's paths go
# through them), so `git clean -fdX` or a new checkout loses nothing: the next up.sh makes the
# links again.
sv_running() { [ -S var/run/supervisor.sock ] && supervisorctl -c supervisor.conf pid >/dev/null 2>&1; }
if [ -n "${STATE_DIR:-}" ]; then
  state=$(realpath -m "$STATE_DIR")
elif [ -L var ]; then
  state=$(dirname "$(readlink var)")
elif [ "$(id -u)" = 0 ]; then
  state=/var/lib/flume-service
  if [ -d var ] && sv_running; then
    say "NOTE: the state is in the checkout ($root/var) and supervisord runs from it: it stays there for now."
    say "      To move it to $state (channels, secrets, tokens and programs kept): supervisorctl -c supervisor.conf shutdown, then bash scripts/up.sh"
    state=$root
  fi
else
  state=$root
fi
[[ "$state" =~ ^/[A-Za-z0-9_./+@-]+$ ]] || { say "ERROR: the state directory $state: use a path of letters, digits and _ . / + @ -"; exit 2; }
if [ "$state" != "$root" ]; then
  mkdir -p "$state"
  [ -z "$run_as" ] || chown -h "$run_as": "$state"
  # Which checkout uses this state (a plain file: never read through a link).
  previous=
  if [ -f "$state/.checkout" ] && [ ! -L "$state/.checkout" ]; then previous=$(head -c 4096 "$state/.checkout"); fi
  if [ -n "$previous" ] && [ "$previous" != "$root" ] && [ -L "$previous/var" ] && [ "$(readlink "$previous/var")" = "$state/var" ]; then
    say "ERROR: $state is the state of the checkout at $previous, which still uses it: set STATE_DIR to another directory"
    exit 2
  fi
  for item in conf.d services var settings.env; do
    if [ -L "$item" ]; then
      [ "$(readlink "$item")" = "$state/$item" ] || ln -sfn "$state/$item" "$item"
      continue
    fi
    if [ -e "$item" ]; then
      if [ -n "$(ls -A "$state/$item" 2>/dev/null)" ] || [ -f "$state/$item" ]; then
        say "ERROR: both $root/$item and $state/$item hold state: move one away (nothing was changed for $item)"
        exit 2
      fi
      if sv_running; then
        say "ERROR: supervisord runs from $root: supervisorctl -c supervisor.conf shutdown first, then the state moves to $state"
        exit 2
      fi
      rm -rf "${state:?}/$item"
      mv -T "$item" "$state/$item"
      say "moved $root/$item to $state/$item (the checkout links to it)"
    fi
    [ "$item" = settings.env ] || as_service mkdir -p "$state/$item"
    ln -sfn "$state/$item" "$item"
  done
  printf '%s\n' "$root" | as_service tee "$state/.checkout.new" >/dev/null
  as_service mv -f "$state/.checkout.new" "$state/.checkout"
fi
export STATE_DIR=$state
if [ -n "$run_as" ]; then
  for d in conf.d services var; do
    if [ -L "$state/$d" ]; then
      say "ERROR: $state/$d is a symbolic link ($(readlink "$state/$d")): the state's directories must be real ones. Nothing was started."
      exit 2
    fi
    mkdir -p "$state/$d"
    # -h: a link inside is changed itself, never what it points to.
    chown -R -h "$run_as": "$state/$d"
  done
fi

# Every setting checked, as the service reads it (environment over the settings file), before
# anything starts: a bad one stops here, naming it.
if ! as_service node dist/cli/settings.js check; then
  say "the settings do not pass the checks (above): nothing was started"
  exit 2
fi
as_service mkdir -p conf.d services var/run var/log var/supervisor.d
if [ $embedded = 1 ]; then
  say "no Redis answers on 127.0.0.1:6379 and REDIS_URL is not set: running an embedded one"
  as_service bash scripts/embedded-redis.sh "$root" "$(command -v redis-server)"
  export REDIS_PASSWORD_FILE=$root/var/redis/password
else
  as_service rm -f var/supervisor.d/redis.conf
fi

as_service node dist/cli/gateway-config.js >/dev/null

# What a supervisord that died (kill -9, the OOM killer, a crash) left running: agents, API,
# gateway master and workers, event listener, embedded Redis. Stopped as supervisord would stop
# them (agents with SIGTERM: Flume checkpoints the channel), so the supervisord below starts
# exactly one of each (src/cli/reap.ts; nothing a live supervisord owns, nothing of another
# installation).
node dist/cli/reap.js | sed 's/^/[up] /'

# supervisord runs as the service user, or (none) as root: exactly one per installation.
sv_args=(-c supervisor.conf ${run_as:+-u "$run_as"})
if [ $foreground = 1 ]; then
  if sv_running; then say "ERROR: supervisord already runs for this installation (supervisorctl -c supervisor.conf pid)"; exit 1; fi
  # Programs written for another build, settings or state directory get this one's command line.
  as_service node dist/cli/programs.js --write >/dev/null
  say "supervisord -n ${sv_args[*]} (foreground)"
  umask 027
  exec supervisord -n "${sv_args[@]}"
fi

# At boot, with systemd, the unit starts the service (scripts/systemd-unit.sh).
unit=
if [ "$(id -u)" = 0 ] && [ -d /run/systemd/system ] && [ "${FLUME_SYSTEMD:-1}" = 1 ]; then
  unit=flume-service
  bash scripts/systemd-unit.sh > /etc/systemd/system/$unit.service.new
  if ! cmp -s /etc/systemd/system/$unit.service.new /etc/systemd/system/$unit.service; then
    mv /etc/systemd/system/$unit.service.new /etc/systemd/system/$unit.service
    systemctl daemon-reload
    say "installed /etc/systemd/system/$unit.service (supervisord in the foreground, restarted on failure, started at boot)"
  else
    rm -f /etc/systemd/system/$unit.service.new
  fi
  systemctl enable --quiet $unit
  # Debian's own supervisor service runs another supervisord (for /etc/supervisor/conf.d): it is
  # left alone when it runs programs of its own, and stopped and disabled when it runs none.
  if systemctl is-enabled --quiet supervisor 2>/dev/null && [ -z "$(ls -A /etc/supervisor/conf.d 2>/dev/null)" ]; then
    systemctl disable --now --quiet supervisor && say "disabled Debian's supervisor service: it ran no programs, and flume-service runs its own supervisord"
  fi
fi

if sv_running; then
  say "supervisord already runs: applying config and restarting the API"
  supervisorctl -c supervisor.conf update >/dev/null
  supervisorctl -c supervisor.conf restart api >/dev/null
  supervisorctl -c supervisor.conf signal HUP gateway >/dev/null || supervisorctl -c supervisor.conf start gateway >/dev/null
  if [ -n "$unit" ] && ! systemctl is-active --quiet $unit; then
    say "NOTE: this supervisord was not started by the $unit unit; the unit starts it at the next boot (to hand over now: supervisorctl -c supervisor.conf shutdown && systemctl start $unit)"
  fi
else
  as_service node dist/cli/programs.js --write >/dev/null
  if [ -n "$unit" ]; then
    say "starting the $unit unit (systemctl start $unit)"
    systemctl start $unit
  else
    say "starting supervisord ${sv_args[*]}"
    # supervisor.conf's umask applies when supervisord daemonizes; this covers it in the foreground too.
    umask 027
    supervisord "${sv_args[@]}"
  fi
fi

# Where the API and the gateway listen, as the service reads it (environment over settings.env).
# The URLs are data: passed to the probes as arguments, never pasted into their program text.
mapfile -t urls < <(as_service node dist/cli/settings.js urls)
url=${urls[0]}
gw=${urls[1]}
answers_ready() { node -e 'fetch(process.argv[1] + "/readyz").then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$1"; }
gateway_ok() { node -e 'fetch(process.argv[1] + "/healthz").then((r) => r.text()).then((t) => process.exit(t.includes("\"message\":\"ok\"") ? 0 : 1), () => process.exit(1))' "$1"; }
for _ in $(seq 1 60); do
  if answers_ready "$url"; then
    say "flume-service is up at $url"
    gw_ok=0
    for _ in $(seq 1 10); do
      if gateway_ok "$gw" 2>/dev/null; then gw_ok=1; break; fi
      sleep 1
    done
    if [ $gw_ok = 0 ]; then
      say "WARNING: the gateway does not answer at $gw (its port taken by something else? set GATEWAY_PORT; a certificate this host does not trust?); see var/log/gateway.log"
    fi
    cat <<TXT

  Every /v1/api call needs a token. Mint an admin one (signed with var/jwt-secret):
    TOKEN=\$(npm run -s token -- --role admin)
    AUTH="Authorization: Bearer \$TOKEN"

  Try it:
    curl -s -H "\$AUTH" -X POST $url/v1/api/demo/events/create
    curl -s -H "\$AUTH" $url/v1/api/demo/events/status
    INGEST=\$(curl -s -H "\$AUTH" -X POST $url/v1/api/token -d '{"username":"me"}' -H 'content-type: application/json' | node -pe 'JSON.parse(require("fs").readFileSync(0)).token')
    curl -s -X POST $gw/ingest/demo/events -H "Authorization: Bearer \$INGEST" -d '[{"headers":{},"body":"hello"}]'
    cat var/flume-demo-events/out/*

  Dashboard: $url/dashboard   API docs: $url/docs   Prometheus: $url/metrics
  Gateway: $gw.  Logs: var/log/, var/<program>/agent.log.  Stop everything: supervisorctl -c supervisor.conf shutdown
TXT
    exit 0
  fi
  sleep 1
done
say "the API did not become ready in 60 s; last lines of var/log/api.log:"
as_service tail -n 20 var/log/api.log 2>/dev/null || true
exit 1
