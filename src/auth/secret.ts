import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Config } from '../config.js';

export function secretFile(cfg: Pick<Config, 'varDir'>): string {
  return join(cfg.varDir, 'jwt-secret');
}

/**
 * The control-API signing secret: JWT_SECRET if set, else var/jwt-secret, created once with
 * mode 0600. Creation uses O_EXCL, so two processes starting together agree on one secret.
 */
export function loadOrCreateSecret(cfg: Pick<Config, 'varDir' | 'JWT_SECRET'>): string {
  if (cfg.JWT_SECRET) return cfg.JWT_SECRET;
  const file = secretFile(cfg);
  try {
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
