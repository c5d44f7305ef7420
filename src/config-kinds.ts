// The kinds of settings (their shapes) and what the service is launched with: config.ts's
// floor (0), apart from its one schema so each stays readable.
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseEnv } from 'node:util';
import { z } from 'zod';

/** The repository root: templates/ and flume/lib/ live here whatever STATE_DIR says. */
export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export const portRange = z
  .string()
  .regex(/^\d{1,5}-\d{1,5}$/, 'must look like 10000-60000')
  .transform((s) => s.split('-').map(Number) as [number, number])
  .refine(([lo, hi]) => lo >= 1024 && hi <= 65535 && lo <= hi, 'must be within 1024-65535, low-high');

/**
 * The shape of AGENT_JVM_OPTIONS, which the host's operator sets (a table's own options are
 * checked by name instead: resources/jvm-options.ts): -XX flags, thread stack and initial/young heap
 * sizes; nothing that could change the class path, the main class or the agent's ports, and only
 * characters that go into a supervisord command line as they are.
 */
export const HOST_JVM_OPTION = /^-(?:XX:[+-]?[A-Za-z][A-Za-z0-9]*(?:=[A-Za-z0-9:._/-]+)?|X(?:ss|ms|mn)\d+[kKmMgG]?)$/;
/**
 * Settings are data, never code: each has the shape of what it is. A file path, a host and a
 * word of a command line go into config files, command lines and scripts as they are, so none
 * may carry a quote, a space, a '$', a ';' or a new line.
 */
export const PATH_CHARS = /^[A-Za-z0-9_.\/+@-]+$/;
export const pathSetting = () => z.string().regex(PATH_CHARS, 'must be a path of letters, digits and _ . / + @ - (no spaces, quotes or shell characters)');
/** An address to listen on or to reach: an IPv4 or IPv6 address, or a host name. */
export const hostSetting = () =>
  z
    .string()
    .max(253)
    .refine((h) => z.ipv4().safeParse(h).success || z.ipv6().safeParse(h).success || z.hostname().safeParse(h).success, 'must be an IP address or a host name');

/** host:port as a URL or nginx's listen takes it (an IPv6 address in brackets). */
export const hostPort = (host: string, port: number) => `${host.includes(':') ? `[${host}]` : host}:${port}`;

/** Where a local client reaches a service listening on `host` (a wildcard address is reached on loopback). */
export const reachableHost = (host: string) => (host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host);

/** An agent's heap (-Xmx): AGENT_HEAP, AGENT_MAX_HEAP and a table's jvm.heap. */
export const heapSize = () => z.string().regex(/^[1-9]\d{0,6}[mMgG]$/, 'must look like 256m or 1g');
/** The default heap ceiling: an eighth of the host's memory, 256m to 4g. */
export const defaultMaxHeap = () => `${Math.max(256, Math.min(4096, Math.floor(totalmem() / 8 / 1024 / 1024)))}m`;
/** How agents are launched (flume/agent.env): the scripts source the same file. */
export const AGENT_ENV = parseEnv(readFileSync(join(PROJECT_ROOT, 'flume', 'agent.env'), 'utf8')) as Record<string, string | undefined>;
const agentEnv = (name: string) => {
  const v = AGENT_ENV[name];
  if (!v) throw new Error(`flume/agent.env lacks ${name}`);
  return v;
};
export const DEFAULT_JVM_OPTIONS = agentEnv('AGENT_JVM_OPTIONS');
/** Our launcher's jar in FLUME_LIB_DIR and its main class; Flume's own entry point. */
export const LAUNCHER = { jar: agentEnv('LAUNCHER_JAR'), mainClass: agentEnv('LAUNCHER_MAIN_CLASS') };
export const FLUME_MAIN_CLASS = agentEnv('FLUME_MAIN_CLASS');
/** Flume's JSON metrics bound to 127.0.0.1 (in the launcher's jar). */
export const LOOPBACK_METRICS_CLASS = agentEnv('LOOPBACK_METRICS_CLASS');

/** Debian's bundle of the system's trusted CAs (ca-certificates): the default trust for TLS to Redis and etcd. */
export const SYSTEM_CA_FILE = '/etc/ssl/certs/ca-certificates.crt';
