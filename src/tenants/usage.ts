import type { Redis } from 'ioredis';
import { redisCall } from '../redis/client.js';
import type { Keys } from '../redis/keys.js';
import type { Usage } from '../resources/quota.js';

/** How many minutes of each db's usage the API shows (the current one, still counting, included). */
export const USAGE_MINUTES = 10;

const FIELD = /^([a-z0-9][a-z0-9_]{0,47})\t(e|b|quota|share)$/;

/**
 * Each db's use of the gateway over the last minutes, from what every gateway worker adds to
 * `<p>usage:<minute>` (templates/gateway/lua/flume_gateway/tenants.lua); fields that are not the
 * gateway's (a name that is no db name, a count that is no count) are skipped. Rates are over the
 * last full minute.
 */
export async function readUsage(redis: Redis, keys: Keys, now = Date.now()): Promise<Map<string, Usage>> {
  const current = Math.floor(now / 60_000);
  const minutes = Array.from({ length: USAGE_MINUTES }, (_, i) => current - USAGE_MINUTES + 1 + i);
  const tx = redis.multi();
  for (const m of minutes) tx.hgetall(keys.usage(m));
  const answers = (await redisCall(() => tx.exec())) ?? [];
  const out = new Map<string, Usage>();
  const of = (db: string): Usage => {
    let u = out.get(db);
    if (!u) {
      u = { eventsPerSecond: 0, bytesPerSecond: 0, refused: {}, minutes: minutes.map((m) => ({ minute: new Date(m * 60_000).toISOString(), events: 0, bytes: 0, refused: 0 })) };
      out.set(db, u);
    }
    return u;
  };
  answers.forEach(([, fields], i) => {
    for (const [field, raw] of Object.entries((fields ?? {}) as Record<string, string>)) {
      const m = FIELD.exec(field);
      const n = Number(raw);
      if (!m || !Number.isSafeInteger(n) || n < 0) continue;
      const [, db, kind] = m as unknown as [string, string, 'e' | 'b' | 'quota' | 'share'];
      const u = of(db);
      const row = u.minutes[i]!;
      const lastFull = i === USAGE_MINUTES - 2;
      if (kind === 'e') {
        row.events += n;
        if (lastFull) u.eventsPerSecond = n / 60;
      } else if (kind === 'b') {
        row.bytes += n;
        if (lastFull) u.bytesPerSecond = n / 60;
      } else {
        row.refused += n;
        if (lastFull) u.refused[kind] = (u.refused[kind] ?? 0) + n;
      }
    }
  });
  return out;
}
