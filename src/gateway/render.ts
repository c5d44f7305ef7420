import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { type Config } from '../config.js';
import { hostPort, PROJECT_ROOT, SYSTEM_CA_FILE } from '../config-kinds.js';
import { fill } from '../templates.js';
import { loadOrCreateTokenHashKey } from '../auth/secret.js';
import { ROUTE_VALUE } from '../agents/route-table.js';
import { ErrorCodes, GATEWAY_ERRORS } from '../errors.js';
import { writeAtomic } from '../store/files.js';

const GATEWAY_TEMPLATES = join(PROJECT_ROOT, 'templates', 'gateway');
// Debian's nginx loads dynamic modules by path, NDK first; OpenResty has them built in.
const DEBIAN_MODULES = ['/usr/lib/nginx/modules/ndk_http_module.so', '/usr/lib/nginx/modules/ngx_http_lua_module.so'];

export interface GatewayFiles {
  dir: string;
  configFile: string;
}

const luaString = (s: string) => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

/** The gateway's errors as a Lua module: name -> status, code and Retry-After, from src/errors.ts. */
export function gatewayErrorsLua(): string {
  const rows = Object.entries(GATEWAY_ERRORS).map(([name, e]) => {
    const retry = 'retryAfter' in e ? `, retry_after = ${e.retryAfter}` : '';
    return `  ${name} = { status = ${e.status}, code = ${ErrorCodes[name as keyof typeof GATEWAY_ERRORS]}${retry} },`;
  });
  return ['-- Generated from src/errors.ts by src/gateway/render.ts at set-up: do not edit.', 'return {', ...rows, '}', ''].join('\n');
}

/** The route value's format as a Lua module, from src/agents/route-table.ts. */
export function gatewayRoutesLua(): string {
  const rows = Object.entries(ROUTE_VALUE).map(([k, v]) => `  ${k} = "${luaString(v)}",`);
  return ['-- Generated from src/agents/route-table.ts by src/gateway/render.ts at set-up: do not edit.', 'return {', ...rows, '}', ''].join('\n');
}

/** One of the gateway's errors as the JSON body nginx.conf returns by itself. */
const errorBody = (name: keyof typeof GATEWAY_ERRORS, message: string) => JSON.stringify({ code: ErrorCodes[name], error: name, message });

/** Where the gateway listens: plain HTTP, or HTTPS with its certificate (and optional plain HTTP on loopback). */
function listenLines(cfg: Config): string {
  if (!cfg.GATEWAY_TLS_CERT_FILE || !cfg.GATEWAY_TLS_KEY_FILE) return `listen ${hostPort(cfg.GATEWAY_HOST, cfg.GATEWAY_PORT)};`;
  return [
    `listen ${hostPort(cfg.GATEWAY_HOST, cfg.GATEWAY_PORT)} ssl;`,
    ...(cfg.GATEWAY_PLAIN_PORT ? [`    listen 127.0.0.1:${cfg.GATEWAY_PLAIN_PORT};`] : []),
    `    ssl_certificate ${cfg.GATEWAY_TLS_CERT_FILE};`,
    `    ssl_certificate_key ${cfg.GATEWAY_TLS_KEY_FILE};`,
    '    ssl_protocols TLSv1.2 TLSv1.3;',
    '    ssl_session_cache shared:flume_tls:10m;',
    '    ssl_session_timeout 1h;',
  ].join('\n');
}

/** The hard limit on open files this process (and so the gateway supervisord starts beside it) may raise itself to. */
function openFilesLimit(): number {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const hard = line?.trim().split(/\s+/)[4];
    return hard === undefined || hard === 'unlimited' ? 1_048_576 : Number(hard) || 4096;
  } catch {
    return 4096;
  }
}

/**
 * What a flood of connections meets: worker connections sized to the open-file limit (each
 * worker raises its own to it), header and body timeouts, and per-address limits on ingest.
 */
function connectionLimits(cfg: Config) {
  const files = Math.min(openFilesLimit(), 131_072);
  const connections = cfg.GATEWAY_WORKER_CONNECTIONS ?? Math.max(1024, Math.min(65_536, files - 256));
  const limits = [
    ...(cfg.GATEWAY_CONNECTIONS_PER_ADDRESS ? [`limit_conn flume_per_address ${cfg.GATEWAY_CONNECTIONS_PER_ADDRESS};`] : []),
    ...(cfg.GATEWAY_REQUESTS_PER_ADDRESS ? [`limit_req zone=flume_rate_per_address burst=${cfg.GATEWAY_REQUESTS_PER_ADDRESS} nodelay;`] : []),
  ];
  return {
    workerConnections: connections,
    workerFiles: Math.max(files, connections + 256),
    headerTimeout: cfg.GATEWAY_HEADER_TIMEOUT_SECONDS,
    bodyTimeout: cfg.GATEWAY_BODY_TIMEOUT_SECONDS,
    requestsPerAddress: cfg.GATEWAY_REQUESTS_PER_ADDRESS || 1,
    addressLimits: limits.join('\n      '),
    tooManyConnectionsBody: errorBody('TOO_MANY_CONNECTIONS', `this address has ${cfg.GATEWAY_CONNECTIONS_PER_ADDRESS} ingest requests in progress already (GATEWAY_CONNECTIONS_PER_ADDRESS)`),
    rateLimitedBody: errorBody('RATE_LIMITED', `this address sends over ${cfg.GATEWAY_REQUESTS_PER_ADDRESS} requests per second (GATEWAY_REQUESTS_PER_ADDRESS)`),
  };
}


/**
 * Writes the gateway's nginx.conf into <varDir>/gateway/ from templates/gateway/, with the
 * Redis address, key prefix, token hash key and limits of `cfg` (mode 0600). Lua modules are used from templates/ as is.
 */
export async function writeGatewayConfig(
  cfg: Config,
  opts: { workers?: number; accessLog?: boolean; modules?: string[] } = {},
): Promise<GatewayFiles> {
  const dir = join(cfg.varDir, 'gateway');
  const runDir = join(dir, 'run');
  const logDir = join(cfg.varDir, 'log');
  await mkdir(runDir, { recursive: true });
  await mkdir(logDir, { recursive: true });
  const redis = new URL(cfg.REDIS_URL);
  const modules = (opts.modules ?? DEBIAN_MODULES).filter((m) => existsSync(m));
  const generatedLua = join(dir, 'lua');
  await mkdir(generatedLua, { recursive: true });
  // Replaced whole: workers started by a reload (HUP) require it while this may be writing.
  await writeAtomic(join(generatedLua, 'flume_errors.lua'), gatewayErrorsLua(), 0o644);
  await writeAtomic(join(generatedLua, 'flume_routes.lua'), gatewayRoutesLua(), 0o644);
  const text = fill(readFileSync(join(GATEWAY_TEMPLATES, 'nginx.conf'), 'utf8'), {
    loadModules: modules.map((m) => `load_module ${m};`).join('\n'),
    workers: opts.workers ?? 2,
    user: userInfo().username,
    runDir,
    logDir,
    // Errors go to stderr: supervisord keeps them in var/log/gateway.log and rotates it by size.
    accessLog: opts.accessLog === false || cfg.GATEWAY_ACCESS_LOG === 'off' ? 'off' : cfg.GATEWAY_ACCESS_LOG === 'stdout' ? '/dev/stdout' : `${logDir}/gateway-access.log`,
    luaDir: join(GATEWAY_TEMPLATES, 'lua'),
    generatedLuaDir: generatedLua,
    bodyTooLargeBody: errorBody('BODY_TOO_LARGE', `the body is over ${cfg.GATEWAY_MAX_BODY}`),
    notFoundBody: errorBody('NOT_FOUND', 'POST /ingest/<db>/<table>'),
    redisHost: luaString(redis.hostname || '127.0.0.1'),
    redisPort: Number(redis.port || 6379),
    redisUsername: luaString(decodeURIComponent(redis.username)),
    redisPassword: luaString(decodeURIComponent(redis.password)),
    redisTls: redis.protocol === 'rediss:' ? 'true' : 'false',
    redisServerName: luaString(redis.hostname),
    redisTlsTrust: redis.protocol === 'rediss:' ? `lua_ssl_trusted_certificate ${cfg.REDIS_TLS_CA_FILE ?? SYSTEM_CA_FILE};\n  lua_ssl_verify_depth 4;` : '',
    redisDb: Number(redis.pathname.replace('/', '') || 0),
    prefix: luaString(cfg.REDIS_KEY_PREFIX),
    tokenHashKey: luaString(loadOrCreateTokenHashKey(cfg)),
    cacheTtl: cfg.GATEWAY_CACHE_TTL_MS / 1000,
    staleSeconds: cfg.GATEWAY_STALE_SECONDS,
    rateLimit: cfg.GATEWAY_RATE_LIMIT,
    badTokenLimit: cfg.GATEWAY_BAD_TOKEN_LIMIT,
    maxEvents: cfg.GATEWAY_MAX_EVENTS,
    batchWindow: cfg.GATEWAY_BATCH_WINDOW_MS / 1000,
    traceSeconds: cfg.GATEWAY_TRACE_PER_SECOND ? cfg.GATEWAY_TRACE_SECONDS : 0,
    // Each worker traces its share of the requests a second.
    tracePerWorker: Math.ceil(cfg.GATEWAY_TRACE_PER_SECOND / (opts.workers ?? 2)),
    listen: listenLines(cfg),
    metricsOn: cfg.GATEWAY_METRICS_PORT ? 'true' : 'false',
    fairShareInFlight: cfg.GATEWAY_FAIR_SHARE_IN_FLIGHT,
    fairShareWait: cfg.GATEWAY_FAIR_SHARE_WAIT_MS / 1000,
    metricsServer: cfg.GATEWAY_METRICS_PORT
      ? `server {\n    listen 127.0.0.1:${cfg.GATEWAY_METRICS_PORT};\n    access_log off;\n    location = /metrics { content_by_lua_block { require("flume_gateway").metrics() } }\n    location / { return 404; }\n  }`
      : '',
    maxBody: cfg.GATEWAY_MAX_BODY,
    ...connectionLimits(cfg),
  });
  const configFile = join(dir, 'nginx.conf');
  // It holds the token hash key and any Redis password: readable by the owner only; replaced
  // whole, since a reload (HUP) may read it at any time.
  await writeAtomic(configFile, text, 0o600);
  return { dir, configFile };
}
