import type { Redis } from 'ioredis';
import { traceNotFound } from '../errors.js';
import { redisCall } from '../redis/client.js';
import type { Keys } from '../redis/keys.js';
import { traceRecordSchema, type Trace, type TraceRecord } from '../resources/trace.js';
import { programName, type TableRef } from '../resources/table.js';

/** A sample of a channel: when, which JVM (its start), how many events its sink had taken. */
export interface TakeSample {
  at: number;
  start: number;
  take: number;
}

/**
 * When a channel had taken everything up to a mark (its JVM's start, the takes that cover a
 * request's events, and the takes seen when it was read), from samples in time order: the first sample that shows it, or null. A
 * sample of another JVM takes over what was left (the mark less the takes last seen before it),
 * since that JVM replays what the last did not take and counts from 0: the rule of
 * templates/gateway/lua/flume_gateway/sink_ack.lua (M.taken), which the gateway answers by.
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
  const m = /^(\d+):(\d+):(\d+)$/.exec(member);
  return m ? { at: Number(m[1]), start: Number(m[2]), take: Number(m[3]) } : null;
}

/**
 * Request traces the gateway writes (templates/gateway/lua/flume_gateway/trace.lua), read back:
 * t0 accepted, t1 committed to the channel, t2 taken by the sink.
 *
 * Guarantees: a trace is only ever the table's own (a request id traced for another table is
 * 404, as one never traced); a record that does not parse is 404 too, never an answer made up
 * from it; takenBy is an upper bound that is never earlier than the sink's commit.
 */
export class TraceStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  async get(ref: TableRef, requestId: string): Promise<Trace> {
    const raw = await redisCall(() => this.redis.get(this.keys.trace(requestId)));
    const record = raw === null ? null : parsed(raw);
    if (!record || record.db !== ref.db || record.table !== ref.table) throw traceNotFound(programName(ref), requestId);
    const taken = record.takenAt ?? (await this.takenFromSamples(ref, record));
    return {
      requestId,
      db: record.db,
      table: record.table,
      events: record.events,
      ack: record.ack,
      acceptedAt: new Date(record.acceptedAt).toISOString(),
      committedAt: new Date(record.committedAt).toISOString(),
      takenBy: taken === null ? null : new Date(Math.max(taken, record.committedAt)).toISOString(),
      stage: taken === null ? 'channel' : 'sink',
    };
  }

  private async takenFromSamples(ref: TableRef, r: TraceRecord): Promise<number | null> {
    if (r.start === undefined || r.need === undefined || r.seen === undefined) return null;
    const members = await redisCall(() => this.redis.zrangebyscore(this.keys.traceTakes(ref.db, ref.table), r.committedAt, '+inf'));
    const samples = members.map(parseSample).filter((s): s is TakeSample => s !== null);
    return takenBy({ start: r.start, need: r.need, seen: r.seen }, samples);
  }
}

function parsed(raw: string): TraceRecord | null {
  try {
    const r = traceRecordSchema.safeParse(JSON.parse(raw));
    return r.success ? r.data : null;
  } catch {
    return null;
  }
}
