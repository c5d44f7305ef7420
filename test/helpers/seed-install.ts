import { cpSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../src/config-kinds.js';

export const SEED_FIXTURE = join(PROJECT_ROOT, 'test', 'fixtures', 'seed-install');
const FIXTURE_ROOT = '/path/to/service';

/** The fixture copied under `dir`, its paths made the copy's own (as if the old service were installed there). */
export function seedInstallAt(dir: string): string {
  cpSync(SEED_FIXTURE, dir, { recursive: true });
  const walk = (d: string): void => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else writeFileSync(p, readFileSync(p, 'utf8').replaceAll(FIXTURE_ROOT, dir));
    }
  };
  walk(dir);
  return dir;
}

/** The fixture's Redis keys (redis.txt: SET and SADD lines), as commands to send. */
export function seedRedisCommands(): string[][] {
  return readFileSync(join(SEED_FIXTURE, 'redis.txt'), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => l.trim().split(/\s+/));
}
