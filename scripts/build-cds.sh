#!/usr/bin/env bash
# Builds flume/flume.jsa, an AppCDS archive of the classes a Flume agent loads (Java 17's
# dynamic archive: -XX:ArchiveClassesAtExit). Agents map it read-only and shared (page cache),
# so each starts faster and the fleet holds one copy of Flume's class metadata. Run by setup.sh
# whenever flume/lib is newer than the archive. A stale or missing archive only costs speed:
# agents run without it (-Xshare:auto).
set -euo pipefail
cd "$(dirname "$0")/.."
java=${JAVA_BIN:-java}
archive=flume/flume.jsa
tmp=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

port=$(( 20000 + RANDOM % 10000 ))
mkdir -p "$tmp/cp" "$tmp/data" "$tmp/out"
cat >"$tmp/agent.conf" <<CONF
a1.sources = r1
a1.channels = c1
a1.sinks = k1
a1.sources.r1.type = http
a1.sources.r1.bind = 127.0.0.1
a1.sources.r1.port = $port
a1.sources.r1.handler = org.apache.flume.source.http.JSONHandler
a1.sources.r1.interceptors = ts
a1.sources.r1.interceptors.ts.type = timestamp
a1.sources.r1.channels = c1
a1.channels.c1.type = file
a1.channels.c1.checkpointDir = $tmp/cp
a1.channels.c1.dataDirs = $tmp/data
a1.channels.c1.minimumRequiredSpace = 1048576
a1.channels.c1.checkpointOnClose = true
a1.sinks.k1.channel = c1
a1.sinks.k1.type = file_roll
a1.sinks.k1.sink.directory = $tmp/out
CONF
rm -f "$archive"
# The main class and options agents start with (flume/agent.env): our launcher once setup built it.
source flume/agent.env
main=$FLUME_MAIN_CLASS
monitoring=http
if [ -f "flume/lib/$LAUNCHER_JAR" ]; then main=$LAUNCHER_MAIN_CLASS; monitoring=$LOOPBACK_METRICS_CLASS; fi
# The same class path prefix and options agents run with (default AGENT_JVM_OPTIONS).
# shellcheck disable=SC2086 # the options are words
"$java" -Xmx128m $AGENT_JVM_OPTIONS -XX:ArchiveClassesAtExit="$archive" \
  -Djava.net.preferIPv4Stack=true -Dflume.monitoring.type="$monitoring" -Dflume.monitoring.port=$((port + 1)) \
  -Dlog4j.configurationFile="$PWD/templates/log4j2.xml" -cp "$PWD/flume/lib/*" \
  "$main" -n a1 -f "$tmp/agent.conf" --no-reload-conf >"$tmp/log" 2>&1 &
pid=$!
# Accepting, one event through source, channel and sink, and a metrics read: the classes of a working agent.
for _ in $(seq 1 300); do
  curl -s -o /dev/null -X POST -d '[{"body":"cds"}]' "http://127.0.0.1:$port/" && break
  sleep 0.1
done
curl -s -o /dev/null "http://127.0.0.1:$((port + 1))/metrics" || true
sleep 1
kill -TERM "$pid"
wait "$pid" 2>/dev/null || true
pid=
[ -s "$archive" ] || { echo "build-cds: no archive was written; agents run without one" >&2; tail -5 "$tmp/log" >&2; exit 0; }
