import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Config } from '../config.js';

export function secretFile(cfg: Pick<Config, 'varDir'>): string {
  return join(cfg.varDir, 'jwt-secret');
}

export function tokenHashKeyFile(cfg: Pick<Config, 'varDir'>): string {
  return join(cfg.varDir, 'token-hash-key');
}

/**
 * A secret from the environment if set, else from `file`, created once with mode 0600 (O_EXCL:
 * two processes starting together agree on one). An existing file readable by others is
 * narrowed to 0600.
 */
function loadOrCreate(file: string, fromEnv: string | undefined): string {
  if (fromEnv) return fromEnv;
  try {
    if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
    return readFileSync(file, 'utf8').trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  mkdirSync(dirname(file), { recursive: true });
  try {
    writeFileSync(file, `${randomBytes(48).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  return readFileSync(file, 'utf8').trim();
}

/** Signs control-API JWTs: JWT_SECRET, else var/jwt-secret. */
export function loadOrCreateSecret(cfg: Pick<Config, 'varDir' | 'JWT_SECRET'>): string {
  return loadOrCreate(secretFile(cfg), cfg.JWT_SECRET);
}

/**
 * Keys the hashes of ingestion tokens (HMAC), so a Redis dump or var/tokens/ cannot be
 * dictionary-attacked without it: TOKEN_HASH_KEY, else var/token-hash-key. Never in Redis;
 * the gateway gets it through its 0600 nginx.conf.
 */
export function loadOrCreateTokenHashKey(cfg: Pick<Config, 'varDir' | 'TOKEN_HASH_KEY'>): string {
  return loadOrCreate(tokenHashKeyFile(cfg), cfg.TOKEN_HASH_KEY);
}

/** Signs webhook bodies (HMAC-SHA256): WEBHOOK_SECRET, else var/webhook-secret. */
export function loadOrCreateWebhookSecret(cfg: Pick<Config, 'varDir' | 'WEBHOOK_SECRET'>): string {
  return loadOrCreate(join(cfg.varDir, 'webhook-secret'), cfg.WEBHOOK_SECRET);
}
