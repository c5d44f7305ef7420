import type { Redis } from 'ioredis';
import { traceNotFound } from '../errors.js';
import { redisCall } from '../redis/client.js';
import type { Keys } from '../redis/keys.js';
import type { Trace } from '../resources/trace.js';
import { programName, type TableRef } from '../resources/table.js';

/** A sample of a channel: when, which JVM (its start), how many events its sink had taken. */
export interface TakeSample {
  at: number;
  start: number;
  take: number;
}

/** What the gateway keeps of a committed request (templates/gateway/lua/flume_gateway/trace.lua). */
export interface TraceRecord {
  acceptedAt: number;
  committedAt: number;
  events: number;
  ack: 'channel' | 'sink';
  /** The channel's mark: its JVM's start, the takes that cover the events, the takes seen then. */
  mark: { start: number; need: number; seen: number } | null;
  takenAt: number | null;
}

/**
 * When a channel had taken everything up to a mark (its JVM's start, the takes that cover a
 * request's events, and the takes seen when it was read), from samples in time order: the first
 * sample that shows it, or null. A sample of another JVM takes over what was left (the mark less
 * the takes last seen before it), since that JVM replays what the last did not take and counts
 * from 0: the rule of templates/gateway/lua/flume_gateway/sink_ack.lua (M.taken), which the
 * gateway answers by.
 */
export function takenBy(mark: { start: number; need: number; seen: number }, samples: TakeSample[]): number | null {
  let { start, need, seen } = mark;
  for (const s of samples) {
    if (s.start !== start) {
      need = Math.max(0, need - seen);
      start = s.start;
      seen = 0;
    }
    seen = Math.max(seen, s.take);
    if (s.take >= need) return s.at;
  }
  return null;
}

/** "<ms>:<start>:<takes>", as the gateway writes them; anything else is skipped. */
export function parseSample(member: string): TakeSample | null {
  const m = /^(\d{1,15}):(\d{1,15}):(\d{1,15})$/.exec(member);
  return m ? { at: Number(m[1]), start: Number(m[2]), take: Number(m[3]) } : null;
}

/** "t0,t1,events,ack,start,need,seen,t2" (start..seen empty when the mark is unknown, t2 when not seen); null if it is not that. */
export function parseTraceValue(v: string): TraceRecord | null {
  const parts = v.split(',');
  if (parts.length !== 8) return null;
  const [t0, t1, events, ack, start, need, seen, t2] = parts as [string, string, string, string, string, string, string, string];
  const digits = (x: string) => /^\d{1,15}$/.test(x);
  if (![t0, t1, events].every(digits) || (ack !== 'channel' && ack !== 'sink')) return null;
  const marked = [start, need, seen].every(digits);
  if (!marked && [start, need, seen].some((x) => x !== '')) return null;
  if (t2 !== '' && !digits(t2)) return null;
  return {
    acceptedAt: Number(t0),
    committedAt: Number(t1),
    events: Number(events),
    ack,
    mark: marked ? { start: Number(start), need: Number(need), seen: Number(seen) } : null,
    takenAt: t2 === '' ? null : Number(t2),
  };
}

/**
 * Request traces the gateway writes (templates/gateway/lua/flume_gateway/trace.lua), read back:
 * t0 accepted, t1 committed to the channel, t2 taken by the sink.
 *
 * Guarantees: a trace is only ever the table's own (the gateway keeps them per table); a value
 * that does not parse is 404, never an answer made up from it; takenBy is an upper bound, never
 * earlier than the sink's commit.
 */
export class TraceStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    /** How long the gateway keeps traces (GATEWAY_TRACE_SECONDS): the minutes looked in. */
    private readonly keptSeconds: number,
    private readonly now: () => number = Date.now,
  ) {}

  async get(ref: TableRef, requestId: string): Promise<Trace> {
    const record = await this.find(ref, requestId);
    if (!record) throw traceNotFound(programName(ref), requestId, this.keptSeconds);
    const taken = record.takenAt ?? (record.mark ? await this.takenFromSamples(ref, record.committedAt, record.mark) : null);
    return {
      requestId,
      db: ref.db,
      table: ref.table,
      events: record.events,
      ack: record.ack,
      acceptedAt: new Date(record.acceptedAt).toISOString(),
      committedAt: new Date(record.committedAt).toISOString(),
      takenBy: taken === null ? null : new Date(Math.max(taken, record.committedAt)).toISOString(),
      stage: taken === null ? 'channel' : 'sink',
    };
  }

  /** The newest minute first, back to the oldest a trace can still be in. */
  private async find(ref: TableRef, requestId: string): Promise<TraceRecord | null> {
    const newest = Math.floor(this.now() / 60_000);
    const oldest = Math.floor((this.now() - this.keptSeconds * 1000) / 60_000) - 1;
    const tx = this.redis.pipeline();
    for (let m = newest; m >= oldest; m--) tx.hget(this.keys.traces(ref.db, ref.table, m), requestId);
    const answers = (await redisCall(() => tx.exec())) ?? [];
    for (const [err, v] of answers) {
      if (err) throw err;
      if (typeof v === 'string') return parseTraceValue(v);
    }
    return null;
  }

  private async takenFromSamples(ref: TableRef, committedAt: number, mark: { start: number; need: number; seen: number }): Promise<number | null> {
    const members = await redisCall(() => this.redis.zrangebyscore(this.keys.traceTakes(ref.db, ref.table), committedAt, '+inf'));
    return takenBy(mark, members.map(parseSample).filter((s): s is TakeSample => s !== null));
  }
}
