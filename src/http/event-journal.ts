import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Keys } from '../redis/keys.js';

/** One event of the stream: its id (the Redis stream entry's, "<ms>-<seq>"), name and data. */
export interface JournalEvent {
  id: string | null;
  event: string;
  data: unknown;
}

/** Stream ids "<ms>-<seq>" in order. */
export function idBefore(a: string, b: string): boolean {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am < bm || (am === bm && as < bs);
}

const STREAM_ID = /^\d{1,16}-\d{1,10}$/;

/**
 * The event stream's memory: every event (incident, state, operation) is appended to a capped
 * Redis stream (`<p>events`, the newest `maxLength`) before it is handed to the open streams,
 * so it carries the entry's id as its SSE `id:`. A client that reconnects with `Last-Event-ID`
 * gets what it missed from `since()`.
 *
 * Guarantees: listeners get events in the order they were published, each with an id that
 * grows; when Redis does not answer, events still go out, without an id (a reconnecting client
 * is told its replay is incomplete). `since()` says whether it holds everything after the id.
 */
export class EventJournal {
  private readonly listeners = new Set<(e: JournalEvent) => void>();
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly maxLength: number,
    private readonly log: Logger,
  ) {}

  publish(event: string, data: unknown): void {
    const line = JSON.stringify(data);
    this.chain = this.chain.then(async () => {
      let id: string | null = null;
      try {
        id = await this.redis.xadd(this.keys.events(), 'MAXLEN', '~', String(this.maxLength), '*', 'e', event, 'd', line);
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'could not keep an event for replay; sent without an id');
      }
      for (const l of this.listeners) l({ id, event, data });
    });
  }

  subscribe(listener: (e: JournalEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * The events after `lastId`, oldest first (at most `maxLength`), and whether that is all of
   * them: false when `lastId` is not a stream id, is older than the oldest kept, or Redis lost them.
   */
  async since(lastId: string): Promise<{ events: JournalEvent[]; complete: boolean; oldest: string | null }> {
    const key = this.keys.events();
    const first = await this.redis.xrange(key, '-', '+', 'COUNT', 1);
    const oldest = first[0]?.[0] ?? null;
    if (!STREAM_ID.test(lastId)) return { events: [], complete: false, oldest };
    const entries = await this.redis.xrange(key, `(${lastId}`, '+', 'COUNT', this.maxLength);
    const events = entries.map(([id, f]) => ({ id, event: f[1] ?? '', data: JSON.parse(f[3] ?? 'null') as unknown }));
    // Complete when nothing after lastId can have been trimmed: the oldest kept is not newer than it.
    return { events, complete: oldest !== null && !idBefore(lastId, oldest), oldest };
  }
}
