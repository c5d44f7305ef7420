import type { Redis } from 'ioredis';
import { redisCall } from '../redis/client.js';
import type { Logger } from 'pino';
import type { Keys } from '../redis/keys.js';

/** Refused calls of one caller (address, and subject when the token was valid) to one db in one minute. */
export interface RefusedEntry {
  /** The minute, e.g. "2026-12-01T20:15:00.000Z". */
  minute: string;
  ip: string;
  /** The control token's subject when it was valid but not allowed (403); null: no valid token (401). */
  who: string | null;
  role: string | null;
  db: string | null;
  status: number;
  count: number;
  /** Up to five of the actions refused, e.g. "POST /v1/api/:db/:table/stop". */
  actions: string[];
}

/** Past this many callers in one flush, further ones count under ip "*" (memory stays bounded). */
const MAX_KEYS = 10_000;
const FLUSH_MS = 2000;

/**
 * Calls the API refused (401, 403), kept apart from the audit trail so that nobody, with a token
 * or without, can push real entries out of it: they are counted per address, subject, db, status
 * and minute, and written every 2 s as one record per such group into a capped Redis stream
 * (`<p>audit-refused`, the newest `streamLength` records) and one warning line in the log.
 * Retention: Redis only (not restored after a Redis loss), the newest `streamLength` records.
 */
export class RefusedCalls {
  private pending = new Map<string, RefusedEntry>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly streamLength: number,
    private readonly log: Logger,
  ) {
    this.timer = setInterval(() => void this.flush(), FLUSH_MS);
    this.timer.unref();
  }

  record(c: { ip: string; who: string | null; role: string | null; db: string | null; status: number; action: string; at: Date }): void {
    const minute = new Date(Math.floor(c.at.getTime() / 60_000) * 60_000).toISOString();
    let key = [minute, c.ip, c.who ?? '', c.db ?? '', c.status].join('|');
    let ip = c.ip;
    if (!this.pending.has(key) && this.pending.size >= MAX_KEYS) {
      ip = '*';
      key = [minute, ip, c.who ?? '', c.db ?? '', c.status].join('|');
    }
    const e = this.pending.get(key) ?? { minute, ip, who: c.who, role: c.role, db: c.db, status: c.status, count: 0, actions: [] };
    e.count++;
    if (e.actions.length < 5 && !e.actions.includes(c.action)) e.actions.push(c.action);
    this.pending.set(key, e);
  }

  /** Writes what was counted since the last flush. Never throws. */
  async flush(): Promise<void> {
    if (!this.pending.size) return;
    const batch = [...this.pending.values()];
    this.pending = new Map();
    const tx = this.redis.multi();
    for (const e of batch) tx.xadd(this.keys.auditRefused(), 'MAXLEN', '~', this.streamLength, '*', 'e', JSON.stringify(e));
    await tx.exec().catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'could not record refused calls'));
    for (const e of batch) this.log.warn({ refused: e }, `refused ${e.count} call(s) from ${e.ip}`);
  }

  /** Newest first, the records of one group merged; only groups within `dbs` when given. */
  async query(f: { limit: number; dbs?: string[] }): Promise<RefusedEntry[]> {
    const merged = new Map<string, RefusedEntry>();
    let end = '+';
    for (let scanned = 0; scanned < this.streamLength; ) {
      const batch = await redisCall(() => this.redis.xrevrange(this.keys.auditRefused(), end, '-', 'COUNT', 1000));
      if (!batch.length) break;
      for (const [id, fields] of batch) {
        scanned++;
        end = `(${id}`;
        const e = JSON.parse(fields[1] ?? '{}') as RefusedEntry;
        if (f.dbs && (!e.db || !f.dbs.includes(e.db))) continue;
        const key = [e.minute, e.ip, e.who ?? '', e.db ?? '', e.status].join('|');
        const m = merged.get(key);
        if (!m) {
          if (merged.size >= f.limit) continue;
          merged.set(key, { ...e, actions: [...e.actions] });
        } else {
          m.count += e.count;
          for (const a of e.actions) if (m.actions.length < 5 && !m.actions.includes(a)) m.actions.push(a);
        }
      }
    }
    return [...merged.values()].sort((a, b) => (a.minute < b.minute ? 1 : a.minute > b.minute ? -1 : 0));
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}
