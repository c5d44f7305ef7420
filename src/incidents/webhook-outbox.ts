import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { Webhook } from 'standardwebhooks';
import { writeAtomic } from '../store/files.js';
import type { WebhookDelivery } from '../resources/incident.js';
import { signature, webhookHost } from './webhooks.js';

/** One message to one URL, as kept on disk until it is delivered, refused or given up. */
interface Pending {
  /** The message id (`webhook-id`): the incident's id, the same for every URL and every attempt. */
  id: string;
  url: string;
  body: string;
  attempts: number;
  /** Unix ms of the next attempt. */
  nextAt: number;
  /** The agent whose incident it is (its delivery record is updated), if any. */
  program: string | null;
  status: number | null;
}

/** What becomes of each delivery, told as it happens (the incident's `webhooks` record). */
export type DeliveryReport = (program: string, id: string, delivery: WebhookDelivery) => Promise<unknown>;

/**
 * Webhooks that survive a restart: each (message, URL) is a file under `dir` until it is
 * delivered (2xx), refused (3xx, never followed, and 4xx other than 429: not retried) or has used its `retries`; attempts
 * back off exponentially from `baseMs` (1 s, 2 s, 4 s, ... at most 10 min apart). A restarted
 * service reads the directory and goes on where it was. Deliveries are at least once: a receiver
 * deduplicates by `webhook-id`.
 *
 * Every request carries the Standard Webhooks headers (`webhook-id`, `webhook-timestamp`,
 * `webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`, keyed by the
 * secret's UTF-8 bytes: a library takes it as `whsec_` + base64 of the secret) and, for one
 * release, the older `X-Flume-Timestamp` / `X-Flume-Signature`.
 */
export class WebhookOutbox {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** Deliveries that ended since this process started, by outcome (the metrics). */
  readonly ended = { delivered: 0, refused: 0, failed: 0 };
  private readonly signer: Webhook;
  private stopped = false;

  constructor(
    private readonly dir: string,
    private readonly urls: string[],
    private readonly opts: { retries: number; baseMs: number; secret: string; timeoutMs?: number },
    private readonly report: DeliveryReport,
    private readonly log: Logger,
  ) {
    this.signer = new Webhook(Buffer.from(opts.secret, 'utf8'), { format: 'raw' });
  }

  /** Resumes what a previous process left (its files), in the order they were due. */
  async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    for (const name of (await readdir(this.dir)).filter((n) => n.endsWith('.json'))) {
      try {
        const p = JSON.parse(await readFile(join(this.dir, name), 'utf8')) as Pending;
        this.schedule(p);
      } catch (err) {
        this.log.warn({ err, file: name }, 'an unreadable webhook delivery was dropped');
        await rm(join(this.dir, name), { force: true });
      }
    }
    if (this.timers.size) this.log.info({ pending: this.timers.size }, 'resuming webhook deliveries');
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  /** Keeps `body` for every URL (on disk first), then delivers it. */
  async send(id: string, body: unknown, program: string | null): Promise<void> {
    const payload = JSON.stringify(body);
    for (const url of this.urls) {
      const p: Pending = { id, url, body: payload, attempts: 0, nextAt: Date.now(), program, status: null };
      await this.save(p);
      this.schedule(p);
    }
  }

  /** How many deliveries wait for their next attempt. */
  get pending(): number {
    return this.timers.size;
  }

  private fileOf(p: Pending): string {
    return join(this.dir, `${createHash('sha256').update(`${p.id}\n${p.url}`).digest('hex').slice(0, 32)}.json`);
  }

  private async save(p: Pending): Promise<void> {
    await writeAtomic(this.fileOf(p), JSON.stringify(p));
  }

  private schedule(p: Pending): void {
    if (this.stopped) return;
    const file = this.fileOf(p);
    clearTimeout(this.timers.get(file));
    const t = setTimeout(() => void this.attempt(p, file), Math.max(0, p.nextAt - Date.now()));
    t.unref();
    this.timers.set(file, t);
  }

  private async attempt(p: Pending, file: string): Promise<void> {
    const host = webhookHost(p.url);
    p.attempts++;
    const now = new Date();
    const timestamp = String(Math.floor(now.getTime() / 1000));
    let outcome: WebhookDelivery['outcome'];
    try {
      const res = await fetch(p.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'flume-service',
          'webhook-id': p.id,
          'webhook-timestamp': timestamp,
          'webhook-signature': this.signer.sign(p.id, now, p.body),
          'x-flume-timestamp': timestamp,
          'x-flume-signature': signature(this.opts.secret, timestamp, p.body),
        },
        body: p.body,
        // A redirect is the receiver's answer, not a new address to send the signed incident to.
        redirect: 'manual',
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 5000),
      });
      await res.arrayBuffer();
      p.status = res.status;
      // 2xx only: a 3xx (never followed) is refused like a 4xx, recorded with the receiver's own status.
      outcome = res.status >= 200 && res.status < 300 ? 'delivered' : res.status < 500 && res.status !== 429 ? 'refused' : 'pending';
      if (outcome !== 'delivered') this.log.warn({ host, status: res.status, attempt: p.attempts, id: p.id }, 'webhook not accepted');
    } catch (err) {
      outcome = 'pending';
      this.log.warn({ host, err: (err as Error).message, attempt: p.attempts, id: p.id }, 'webhook failed');
    }
    if (outcome === 'pending' && p.attempts > this.opts.retries) {
      outcome = 'failed';
      this.log.error({ host, id: p.id, attempts: p.attempts }, 'webhook gave up after its retries');
    }
    this.timers.delete(file);
    if (this.stopped) return;
    if (outcome === 'pending') {
      p.nextAt = Date.now() + Math.min(600_000, this.opts.baseMs * 2 ** (p.attempts - 1));
      await this.save(p).catch((err: unknown) => this.log.error({ err }, 'could not keep a webhook delivery'));
      this.schedule(p);
    } else {
      this.ended[outcome]++;
      await rm(file, { force: true });
    }
    if (p.program) {
      await this.report(p.program, p.id, { host, outcome, status: p.status, attempts: p.attempts, at: new Date().toISOString() }).catch((err: unknown) =>
        this.log.warn({ err, id: p.id }, 'could not record the webhook outcome'),
      );
    }
  }
}
