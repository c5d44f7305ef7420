// Reading the settings: the settings file and the environment, checked by the one schema
// (config.ts), then the checks that span settings and the paths they imply.
import { accessSync, constants, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { parseEnv } from 'node:util';
import { configSchema, type Config } from './config.js';
import { PROJECT_ROOT } from './config-kinds.js';

export class ConfigError extends Error {}


/** Many hosts on an etcd only its users may write: https endpoints, and a client certificate or a user to sign in as. */
export function etcdProtected(c: Pick<Config, 'ETCD_ENDPOINTS' | 'ETCD_CERT_FILE' | 'ETCD_USERNAME'>): boolean {
  return c.ETCD_ENDPOINTS.length > 0 && c.ETCD_ENDPOINTS.every((e) => e.startsWith('https://')) && (!!c.ETCD_CERT_FILE || !!c.ETCD_USERNAME);
}

/**
 * The settings a process runs with: its environment over the settings file, SETTINGS_FILE
 * (default settings.env in the checkout; KEY=VALUE lines, # comments). The file is what an
 * operator edits; `scripts/apply-settings.sh` then restarts only what reads it (the API, the event
 * listener, the gateway's config), never an agent. A key the service does not know is refused,
 * naming the file, so a typo does not go unnoticed.
 */
/** The settings file this process reads: SETTINGS_FILE, else settings.env in the checkout. */
export function settingsFile(env: Record<string, string | undefined> = process.env): string {
  return env.SETTINGS_FILE || join(PROJECT_ROOT, 'settings.env');
}

/** The keys of a settings file the service does not know (SERVICE_USER is the scripts'). */
export const unknownSettings = (values: Record<string, string | undefined>) => Object.keys(values).filter((k) => !(k in configSchema.shape) && k !== 'SERVICE_USER');

/** Every setting the schema knows, taken from `env` ('' counts as unset). */
export const pickSettings = (env: Record<string, string | undefined>) => Object.fromEntries(Object.keys(configSchema.shape).map((k) => [k, env[k] === '' ? undefined : env[k]]));

export function settingsAndEnvironment(env: Record<string, string | undefined> = process.env): Record<string, string | undefined> {
  const file = settingsFile(env);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !env.SETTINGS_FILE) return env;
    throw new ConfigError(`invalid configuration:\n  SETTINGS_FILE: cannot read ${file} (${(err as Error).message})`);
  }
  const fromFile = parseEnv(text) as Record<string, string>;
  const unknown = unknownSettings(fromFile);
  if (unknown.length) throw new ConfigError(`invalid configuration:\n  ${file}: unknown setting(s) ${unknown.join(', ')} (every setting is listed in docs/operations.md)`);
  return { ...fromFile, ...env };
}

export function loadConfig(env: Record<string, string | undefined> = settingsAndEnvironment()): Config {
  const parsed = configSchema.safeParse(pickSettings(env));
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  const c = parsed.data;
  if (c.REDIS_PASSWORD_FILE) {
    const url = new URL(c.REDIS_URL);
    if (!url.password) {
      let password: string;
      try {
        password = readFileSync(c.REDIS_PASSWORD_FILE, 'utf8').trim();
      } catch (err) {
        throw new ConfigError(`invalid configuration:\n  REDIS_PASSWORD_FILE: cannot read ${c.REDIS_PASSWORD_FILE} (${(err as Error).message})`);
      }
      url.password = encodeURIComponent(password);
      c.REDIS_URL = url.toString();
    }
  }
  // What REDIS_URL may be: the gateway's Lua speaks these two, so the API never works on a Redis the gateway cannot reach.
  const redisUrl = new URL(c.REDIS_URL);
  if (redisUrl.protocol !== 'redis:' && redisUrl.protocol !== 'rediss:') {
    throw new ConfigError(`invalid configuration:\n  REDIS_URL: must be redis://[user:password@]host:port[/db] or rediss://... (TLS), not ${redisUrl.protocol}//`);
  }
  if (!!c.GATEWAY_TLS_CERT_FILE !== !!c.GATEWAY_TLS_KEY_FILE) {
    throw new ConfigError('invalid configuration:\n  GATEWAY_TLS_CERT_FILE, GATEWAY_TLS_KEY_FILE: set both (TLS at the gateway) or neither');
  }
  if (c.GATEWAY_PLAIN_PORT && !c.GATEWAY_TLS_CERT_FILE) {
    throw new ConfigError('invalid configuration:\n  GATEWAY_PLAIN_PORT: only with TLS at the gateway (GATEWAY_TLS_CERT_FILE and GATEWAY_TLS_KEY_FILE); without it GATEWAY_PORT is plain HTTP already');
  }
  // Every file a setting names, readable now: a missing certificate stops start-up naming it.
  const files = ['GATEWAY_TLS_CERT_FILE', 'GATEWAY_TLS_KEY_FILE', 'REDIS_TLS_CA_FILE', 'ETCD_CA_FILE', 'ETCD_CERT_FILE', 'ETCD_KEY_FILE', 'ETCD_PASSWORD_FILE'] as const;
  for (const [name, file] of files.map((n) => [n, c[n]] as const)) {
    if (!file) continue;
    try {
      readFileSync(file);
    } catch (err) {
      throw new ConfigError(`invalid configuration:\n  ${name}: cannot read ${file} (${(err as Error).message})`);
    }
  }
  if (!!c.ETCD_CERT_FILE !== !!c.ETCD_KEY_FILE) throw new ConfigError('invalid configuration:\n  ETCD_CERT_FILE, ETCD_KEY_FILE: set both (a client certificate for etcd) or neither');
  if (!!c.ETCD_USERNAME !== !!c.ETCD_PASSWORD_FILE) throw new ConfigError('invalid configuration:\n  ETCD_USERNAME, ETCD_PASSWORD_FILE: set both (an etcd user) or neither');
  if (c.ETCD_ENDPOINTS.length) {
    const tls = c.ETCD_ENDPOINTS.every((e) => e.startsWith('https://'));
    if (!tls && c.ETCD_ENDPOINTS.some((e) => e.startsWith('https://'))) throw new ConfigError('invalid configuration:\n  ETCD_ENDPOINTS: all https:// or all http://, not both');
    if (!tls && (c.ETCD_CA_FILE || c.ETCD_CERT_FILE)) throw new ConfigError('invalid configuration:\n  ETCD_ENDPOINTS: TLS settings for etcd (ETCD_CA_FILE, ETCD_CERT_FILE) need https:// endpoints');
    if (!etcdProtected(c) && !c.ETCD_ALLOW_UNPROTECTED) {
      throw new ConfigError(
        'invalid configuration:\n  ETCD_ENDPOINTS: etcd is not protected: use https:// endpoints with a client certificate (ETCD_CERT_FILE, ETCD_KEY_FILE) ' +
          'or a user (ETCD_USERNAME, ETCD_PASSWORD_FILE), as docs/cluster.md shows; or set ETCD_ALLOW_UNPROTECTED=true to accept that anyone who reaches etcd may write it',
      );
    }
  }
  // Agents start with an empty environment (templates/program.conf): a bare JAVA_BIN is found on
  // the service's own PATH now, as a shell would have found it.
  if (!c.JAVA_BIN.includes('/')) {
    const found = (env.PATH ?? '')
      .split(':')
      .filter(Boolean)
      .map((d) => join(d, c.JAVA_BIN))
      .find((f) => {
        try {
          accessSync(f, constants.X_OK);
          return true;
        } catch {
          return false;
        }
      });
    if (found) c.JAVA_BIN = found;
  }
  const stateDir = resolve(c.STATE_DIR);
  const varDir = resolve(stateDir, 'var');
  return {
    ...c,
    STATE_DIR: stateDir,
    INSTANCE_NAME: c.INSTANCE_NAME ?? `${hostname()}:${c.API_PORT}`,
    NODE_ID: c.NODE_ID ?? (hostname().replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 63) || 'node'),
    confDir: resolve(stateDir, 'conf.d'),
    servicesDir: resolve(stateDir, 'services'),
    varDir,
    supervisorSocket: resolve(c.SUPERVISOR_SOCKET ?? resolve(varDir, 'run', 'supervisor.sock')),
  };
}
