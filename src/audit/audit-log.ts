import { appendFile, mkdir, rename, stat } from 'node:fs/promises';
import { redisCall } from '../redis/client.js';
import { dirname } from 'node:path';
import type { Redis } from 'ioredis';
import { logSince } from '../store/agent-store.js';
import type { Logger } from 'pino';
import type { Keys } from '../redis/keys.js';

/** One mutating call: who did what to which table, and how it ended. */
export interface AuditEntry {
  at: string;
  /** The control token's subject; null when the call carried no valid token (401). */
  who: string | null;
  role: string | null;
  /** "<METHOD> <route>", e.g. "POST /v1/api/:db/:table/stop". */
  action: string;
  db: string | null;
  table: string | null;
  status: number;
  outcome: 'ok' | 'error';
  /** The error's code (BUSY, CONFIG_REVERTED, ...) when it failed. */
  error: string | null;
  /** A bulk operation's id (X-Operation-Id). */
  operationId: string | null;
  /** The query string as sent (dryRun, force, start). */
  query: string | null;
  ip: string;
  /** The request's X-Request-Id (entries from before it was kept have none). */
  requestId?: string;
}

export interface AuditFilter {
  db?: string;
  table?: string;
  who?: string;
  /** Part of the action, e.g. "stop" or "config". */
  action?: string;
  outcome?: 'ok' | 'error';
  limit: number;
  /** Only these dbs (a token limited to some dbs); entries without a db are left out. */
  dbs?: string[];
  /** Continue after this entry (a previous page's nextCursor: a stream id). */
  cursor?: string;
}

/** How much of the file's end is read to refill Redis after a loss. */
const REFILL_BYTES = 4 * 1024 * 1024;

/**
 * The audit trail: every entry is appended to var/audit.log (JSON lines, the truth; rotated
 * at `maxBytes` into audit.log.1 ... .N) and to a capped Redis stream (`<p>audit`, the newest
 * `streamLength`) that answers queries. After a Redis loss `refill()` copies the file's newest
 * entries back. Appends are queued in order and never fail a request: a write error is logged.
 */
export class AuditLog {
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly file: string,
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly opts: { maxBytes: number; files: number; streamLength: number },
    private readonly log: Logger,
  ) {}

  record(entry: AuditEntry): Promise<void> {
    const line = JSON.stringify(entry);
    this.queue = this.queue.then(async () => {
      try {
        await this.rotateIfFull();
        await appendFile(this.file, `${line}\n`, { mode: 0o600 });
      } catch (err) {
        this.log.error({ err, entry }, 'could not append to the audit log');
      }
      await this.redis
        .xadd(this.keys.audit(), 'MAXLEN', '~', this.opts.streamLength, '*', 'e', line)
        .catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'could not add to the audit stream; the file has it'));
    });
    return this.queue;
  }

  /**
   * Newest first, filtered, at most `limit`, after `cursor`; scans at most the stream's length.
   * `nextCursor` continues where this page ended (null: nothing older is kept).
   */
  async query(f: AuditFilter): Promise<{ entries: AuditEntry[]; nextCursor: string | null }> {
    const out: AuditEntry[] = [];
    let end = f.cursor ? `(${f.cursor}` : '+';
    let last: string | null = null;
    for (let scanned = 0; scanned < this.opts.streamLength; ) {
      const batch = await redisCall(() => this.redis.xrevrange(this.keys.audit(), end, '-', 'COUNT', 500));
      if (!batch.length) return { entries: out, nextCursor: null };
      for (const [id, fields] of batch) {
        scanned++;
        end = `(${id}`;
        last = id;
        const e = JSON.parse(fields[1] ?? '{}') as AuditEntry;
        if (matches(e, f)) out.push(e);
        if (out.length >= f.limit) return { entries: out, nextCursor: id };
      }
    }
    return { entries: out, nextCursor: last };
  }

  /**
   * After a Redis loss: the stream again holds the file's newest entries (those written since
   * the loss are in the file too). Returns how many.
   */
  readonly part = 'audit';

  /** Restorable: after a Redis loss, the stream refilled from the file (nothing to do otherwise). */
  async restore(lost: boolean): Promise<string[]> {
    return lost ? [`${await this.refill()} audit entries`] : [];
  }

  async refill(): Promise<number> {
    // The first line of a tail may be cut: only whole JSON lines are kept.
    const lines = (await logSince(this.file, 0, REFILL_BYTES))
      .split('\n')
      .filter((l) => l.startsWith('{') && l.endsWith('}'))
      .slice(-this.opts.streamLength);
    const tx = this.redis.multi().del(this.keys.audit());
    for (const line of lines) tx.xadd(this.keys.audit(), 'MAXLEN', '~', this.opts.streamLength, '*', 'e', line);
    await redisCall(() => tx.exec());
    return lines.length;
  }

  private async rotateIfFull(): Promise<void> {
    const size = (await stat(this.file).catch(() => null))?.size ?? 0;
    if (size === 0) await mkdir(dirname(this.file), { recursive: true });
    if (size < this.opts.maxBytes) return;
    for (let i = this.opts.files - 1; i >= 1; i--) await rename(`${this.file}.${i}`, `${this.file}.${i + 1}`).catch(() => undefined);
    await rename(this.file, `${this.file}.1`).catch(() => undefined);
  }
}

function matches(e: AuditEntry, f: AuditFilter): boolean {
  if (f.dbs && (!e.db || !f.dbs.includes(e.db))) return false;
  if (f.db && e.db !== f.db) return false;
  if (f.table && e.table !== f.table) return false;
  if (f.who && e.who !== f.who) return false;
  if (f.outcome && e.outcome !== f.outcome) return false;
  if (f.action && !e.action.includes(f.action)) return false;
  return true;
}
