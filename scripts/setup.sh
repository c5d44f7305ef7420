#!/usr/bin/env bash
# Installs what flume-service needs and builds it. Idempotent; both README commands run it.
#   Debian packages: supervisor, nginx + Lua (the gateway), a JDK and Maven when missing,
#   redis-server when asked
#   npm dependencies (npm install, pinned by package-lock.json), the TypeScript build (dist/),
#   Apache Flume 1.11.0's jars from Maven Central into flume/lib (through flume/pom.xml);
#   with WITH_HDFS=1 the hdfs sink's jars into flume/hdfs/lib; with NEED_TEST_SERVERS=1 the
#   test suite's Kafka broker and HDFS into test/servers/*/lib.
# Not root and something to install from Debian: prints the exact command and stops.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '[setup] %s\n' "$*"; }

need_apt=()
command -v supervisord >/dev/null 2>&1 || need_apt+=(supervisor)
command -v java >/dev/null 2>&1 || need_apt+=(default-jdk-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
# The gateway: nginx with the Lua module (Debian's packages; OpenResty works as it is).
if ! command -v openresty >/dev/null 2>&1 && [ ! -f /usr/lib/nginx/modules/ngx_http_lua_module.so ]; then
  need_apt+=(nginx libnginx-mod-http-lua lua-nginx-redis lua-cjson)
fi
# The tests run the gateway's pure Lua with busted (test/gateway/lua/), cjson beside it.
if [ "${NEED_TEST_SERVERS:-0}" = 1 ] || [ "${NEED_LUA_TESTS:-0}" = 1 ]; then
  command -v busted >/dev/null 2>&1 || need_apt+=(lua-busted)
  [ -f /usr/lib/x86_64-linux-gnu/lua/5.2/cjson.so ] || ls /usr/lib/*/lua/5.2/cjson.so >/dev/null 2>&1 || need_apt+=(lua-cjson)
fi
# The test suite drives the dashboard in a real headless Chromium (Debian's, via playwright-core).
if [ "${NEED_CHROMIUM:-0}" = 1 ] && ! command -v chromium >/dev/null 2>&1; then need_apt+=(chromium); fi
if [ "${NEED_REDIS_SERVER:-0}" = 1 ] && ! command -v redis-server >/dev/null 2>&1; then need_apt+=(redis-server); fi
# The tests check monitoring/'s alert rules with promtool (Debian's prometheus package; its
# server is not started where services may not start, and the tests never start it).
if [ "${NEED_PROMTOOL:-0}" = 1 ] && ! command -v promtool >/dev/null 2>&1; then need_apt+=(prometheus); fi
# The data-path bench (bench/datapath.ts) loads the gateway with wrk, a C load generator: a
# node one would take a core of the two it measures.
if [ "${NEED_WRK:-0}" = 1 ] && ! command -v wrk >/dev/null 2>&1; then need_apt+=(wrk); fi
# Many hosts (ETCD_ENDPOINTS set, or the cluster tests): etcd 3.4 from Debian. Its package starts
# no etcd where services may not start (policy-rc.d); where it does, the system's etcd is left alone.
# The cluster tests also need iproute2 (ip netns) and curl, to drive hosts in network namespaces.
if [ -n "${ETCD_ENDPOINTS:-}" ] || [ "${NEED_ETCD:-0}" = 1 ]; then
  command -v etcd >/dev/null 2>&1 || need_apt+=(etcd-server)
  command -v etcdctl >/dev/null 2>&1 || need_apt+=(etcd-client)
fi
if [ "${NEED_ETCD:-0}" = 1 ]; then
  command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
  command -v curl >/dev/null 2>&1 || need_apt+=(curl)
fi

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    say "missing Debian packages: ${need_apt[*]}. Run this, then run me again:"
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${need_apt[*]}"
    exit 1
  fi
  say "installing ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # Debian's package enables a system-wide supervisord; ours runs from supervisor.conf instead.
fi

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  say "Node.js 20 or newer is needed (found: $(node --version 2>/dev/null || echo none))"; exit 1
fi

stamp=node_modules/.package-lock.json
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
  say "installing npm dependencies"
  # npm install, not npm ci: npm 11 leaves other platforms' optional packages (rollup's) out
  # of the lock file and npm ci then refuses it. The lock file still pins every version.
  npm install --no-audit --no-fund --loglevel=error
fi

if [ ! -f dist/server.js ] || [ -n "$(find src -newer dist/server.js -name '*.ts' | head -1)" ]; then
  say "building (tsc)"
  ./node_modules/.bin/tsc -p tsconfig.json
fi

# flumectl on PATH: linked into /usr/local/bin as root (a link there is pointed at this
# checkout, the newest set-up wins; a file of that name is left alone).
if [ "$(id -u)" = 0 ] && [ -d /usr/local/bin ]; then
  link=/usr/local/bin/flumectl
  if [ ! -e "$link" ] || [ -L "$link" ]; then ln -sfn "$PWD/bin/flumectl" "$link"; fi
fi

# flume/lib holds exactly the jars flume/pom.xml names: when the pom changes (a new Flume), its
# jars are fetched into a new directory that then replaces flume/lib, so no jar of the old
# version stays on the agents' class path (flume/lib/*). flume/lib/.pom.sha256 says which pom.
pom_sum=$(sha256sum flume/pom.xml | cut -d' ' -f1)
flume_version=$(sed -n 's:.*<flume.version>\(.*\)</flume.version>.*:\1:p' flume/pom.xml)
if [ "$(cat flume/lib/.pom.sha256 2>/dev/null)" != "$pom_sum" ]; then
  if [ ! -f flume/lib/.pom.sha256 ] && [ -f "flume/lib/flume-ng-node-$flume_version.jar" ]; then
    echo "$pom_sum" > flume/lib/.pom.sha256   # fetched by a set-up from before the stamp
  else
    if ls flume/lib/flume-ng-core-*.jar >/dev/null 2>&1; then
      say "flume/pom.xml changed: fetching Apache Flume $flume_version's jars into a new flume/lib (the old ones are removed)"
    else
      say "fetching Apache Flume $flume_version jars from Maven Central (once, ~46 MB)"
    fi
    rm -rf flume/lib.next
    mvn -B -q -f flume/pom.xml dependency:copy-dependencies -Dflume.lib.dir="$PWD/flume/lib.next"
    echo "$pom_sum" > flume/lib.next/.pom.sha256
    rm -rf flume/lib.old
    if [ -d flume/lib ]; then mv flume/lib flume/lib.old; fi
    mv flume/lib.next flume/lib
    rm -rf flume/lib.old
  fi
fi
# Our two Java classes (flume/launcher/): Flume's Application with the channels started before
# the source, so a start does not wait out Flume's 500 ms poll, and Flume's JSON metrics server
# bound to 127.0.0.1 (Flume's own binds every interface). Agents find them in flume/lib.
source flume/agent.env
launcher_jar=flume/lib/$LAUNCHER_JAR
if [ ! -f "$launcher_jar" ] || [ -n "$(find flume/launcher -name '*.java' -newer "$launcher_jar" | head -1)" ]; then
  if command -v javac >/dev/null 2>&1 && command -v jar >/dev/null 2>&1; then
    say "building $launcher_jar (javac)"
    classes=$(mktemp -d)
    javac -d "$classes" -cp "flume/lib/*" flume/launcher/flumeservice/*.java
    jar cf "$launcher_jar" -C "$classes" .
    rm -rf "$classes"
  else
    say "no javac (a JRE only): agents start through Flume's Application, 0.3-0.5 s slower each"
  fi
fi
# Flume's classes as an AppCDS archive: faster, lighter agents (scripts/build-cds.sh).
if [ ! -f flume/flume.jsa ] || [ -n "$(find flume/lib -newer flume/flume.jsa | head -1)" ]; then
  say "building the agents' class-data archive (flume/flume.jsa, once)"
  bash scripts/build-cds.sh
fi
# The hdfs sink: Flume's HDFS sink and Hadoop's shaded client, only when asked (WITH_HDFS=1).
if [ "${WITH_HDFS:-0}" = 1 ] && ! ls flume/hdfs/lib/hadoop-client-api-*.jar >/dev/null 2>&1; then
  say "fetching the hdfs sink's jars (Flume HDFS sink, Hadoop 3.3.6 client) from Maven Central (once, ~50 MB)"
  mvn -B -q -f flume/hdfs/pom.xml dependency:copy-dependencies
fi
# The tests' own servers: a Kafka broker and an HDFS NameNode + DataNode, from Maven Central.
if [ "${NEED_TEST_SERVERS:-0}" = 1 ]; then
  for server in kafka hadoop; do
    if [ ! -f "test/servers/$server/lib/.complete" ]; then
      say "fetching the test $server server's jars from Maven Central (once)"
      mvn -B -q -f "test/servers/$server/pom.xml" dependency:copy-dependencies
      touch "test/servers/$server/lib/.complete"
    fi
  done
fi
say "ready"
