import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { FleetModel } from '../fleet/fleet-model.js';
import { periodic, type Periodic } from '../periodic.js';
import { redisCall } from '../redis/client.js';
import type { Keys } from '../redis/keys.js';
import type { AgentStatus } from '../resources/agent-status.js';

/** Fill from which a table's CHANNEL_FULL gets its own Retry-After (below it, a 503 is a batch over transactionCapacity). */
export const HINT_FILL_PERCENT = 90;
/** The Retry-After while the sink drains nothing (it is away: no rate to go by). */
export const STALLED_RETRY_SECONDS = 60;
export const MAX_RETRY_SECONDS = 300;
/** Every this many ticks every hint is written again (a Redis that lost its data gets them back). */
const REWRITE_EVERY = 30;

/**
 * When a sender should come back after CHANNEL_FULL: the time the sink needs, at the last
 * minute's drain rate, to make room for a hundredth of the channel (so senders spread over the
 * room as it frees), within 1..MAX_RETRY_SECONDS; STALLED_RETRY_SECONDS while nothing drains.
 * null below HINT_FILL_PERCENT: the catalogue's Retry-After applies.
 */
export function channelRetryAfter(s: Pick<AgentStatus, 'metrics' | 'rates'>): number | null {
  const m = s.metrics;
  if (!m || m.channelFillPercent < HINT_FILL_PERCENT) return null;
  const out = s.rates?.outPerSecond ?? 0;
  if (out <= 0) return STALLED_RETRY_SECONDS;
  const room = Math.max(1, Math.ceil(m.channelCapacity / 100));
  return Math.min(MAX_RETRY_SECONDS, Math.max(1, Math.ceil(room / out)));
}

/**
 * Keeps the gateway's Retry-After hints (`<p>retry-after`, field `<db>:<table>`) following the
 * fleet model: written when a table's hint changes, removed when it has none; only changes are
 * written, and all again every REWRITE_EVERY ticks.
 */
export class RetryHints {
  private job: Periodic | null = null;
  private readonly written = new Map<string, number>();
  private ticks = 0;

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly fleet: FleetModel,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.job ??= periodic('retry hints', this.intervalMs, () => this.tick(), this.log);
  }

  async stop(): Promise<void> {
    await this.job?.stop();
    this.job = null;
  }

  async tick(): Promise<void> {
    const all = this.ticks++ % REWRITE_EVERY === 0;
    const set: Record<string, string> = {};
    const gone: string[] = [];
    const seen = new Set<string>();
    for (const s of this.fleet.list()) {
      const field = `${s.db}:${s.table}`;
      seen.add(field);
      const hint = channelRetryAfter(s);
      if (hint === null) {
        if (this.written.has(field)) gone.push(field);
      } else if (all || this.written.get(field) !== hint) {
        set[field] = String(hint);
      }
    }
    for (const field of this.written.keys()) if (!seen.has(field)) gone.push(field);
    if (Object.keys(set).length) await redisCall(() => this.redis.hset(this.keys.retryAfter(), set));
    if (gone.length) await redisCall(() => this.redis.hdel(this.keys.retryAfter(), ...gone));
    for (const [field, v] of Object.entries(set)) this.written.set(field, Number(v));
    for (const field of gone) this.written.delete(field);
  }
}
