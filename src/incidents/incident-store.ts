import type { Redis } from 'ioredis';
import { redisCall } from '../redis/client.js';
import type { Keys } from '../redis/keys.js';
import type { Incident } from '../resources/incident.js';

/** Incidents kept per agent (newest first). */
export const HISTORY_LENGTH = 100;

// KEYS[1] the list; ARGV: index, the entry as read, the new entry. Replaces it only if unchanged.
const REPLACE_IF_SAME = `
if redis.call('LINDEX', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('LSET', KEYS[1], ARGV[1], ARGV[3]) return 1 end
return 0`;

/**
 * Each agent's last HISTORY_LENGTH incidents, newest first, in Redis (a list per agent).
 * Guarantees: `update` is a compare-and-set (two API processes acknowledging, or a webhook
 * outcome landing at once, never lose each other's change); reads of many agents are one
 * round trip.
 */
export class IncidentStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  async push(i: Incident): Promise<void> {
    const key = this.keys.incidents(i.program);
    await redisCall(() => this.redis.multi().lpush(key, JSON.stringify(i)).ltrim(key, 0, HISTORY_LENGTH - 1).exec());
  }

  async history(program: string): Promise<Incident[]> {
    return (await redisCall(() => this.redis.lrange(this.keys.incidents(program), 0, HISTORY_LENGTH - 1))).map((s) => JSON.parse(s) as Incident);
  }

  /**
   * A page of these agents' incidents, newest first (by time, then id), after `cursor` (the
   * previous page's nextCursor: "<at>|<id>"); nextCursor null when no older one is kept.
   */
  async page(programs: string[], limit: number, cursor?: string): Promise<{ incidents: Incident[]; nextCursor: string | null }> {
    const key = (i: Incident) => `${i.at}|${i.id}`;
    const all = (await this.lists(programs, HISTORY_LENGTH)).flat().sort((a, b) => (key(a) < key(b) ? 1 : key(a) > key(b) ? -1 : 0));
    const after = cursor ? all.filter((i) => key(i) < cursor) : all;
    const incidents = after.slice(0, limit);
    return { incidents, nextCursor: after.length > limit ? key(incidents.at(-1)!) : null };
  }

  /** Incidents of these agents from the last 24 h that need someone (not info) and nobody acknowledged. */
  async unacknowledged(programs: string[]): Promise<number> {
    const since = Date.now() - 86_400_000;
    let n = 0;
    for (const list of await this.lists(programs, HISTORY_LENGTH)) {
      for (const i of list) {
        if (Date.parse(i.at) < since) break; // newest first
        if (i.severity !== 'info' && !i.acknowledged) n++;
      }
    }
    return n;
  }

  /** Rewrites one stored incident (compare-and-set, retried); null if it is not (or no longer) kept. */
  async update(program: string, id: string, change: (i: Incident) => Incident): Promise<Incident | null> {
    const key = this.keys.incidents(program);
    for (let attempt = 0; attempt < 5; attempt++) {
      const items = await redisCall(() => this.redis.lrange(key, 0, HISTORY_LENGTH - 1));
      const index = items.findIndex((s) => s.includes(`"id":"${id}"`));
      if (index < 0) return null;
      const next = change(JSON.parse(items[index]!) as Incident);
      if ((await redisCall(() => this.redis.eval(REPLACE_IF_SAME, 1, key, index, items[index]!, JSON.stringify(next)))) === 1) return next;
    }
    return null;
  }

  private async lists(programs: string[], limit: number): Promise<Incident[][]> {
    if (!programs.length) return [];
    const tx = this.redis.pipeline();
    for (const p of programs) tx.lrange(this.keys.incidents(p), 0, limit - 1);
    return ((await redisCall(() => tx.exec())) ?? []).map(([, items]) => ((items as string[] | null) ?? []).map((s) => JSON.parse(s) as Incident));
  }
}
