import { createHmac } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { WebhookDelivery } from '../resources/incident.js';

/**
 * Where a webhook goes, as answers and logs show it: the URL's host only. A URL's path or query
 * often carries the receiver's own secret (Slack, PagerDuty-style keys).
 */
export const webhookHost = (url: string) => {
  try {
    return new URL(url).host;
  } catch {
    return '(invalid URL)';
  }
};

/**
 * The signature a receiver checks: hex HMAC-SHA256 of "<timestamp>.<body>" with the shared
 * secret, sent as `X-Flume-Signature: sha256=<hex>` with `X-Flume-Timestamp: <unix seconds>`.
 */
export function signature(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/**
 * POSTs `body` as JSON to every URL, signed, each with up to `retries` retries (1 s, 2 s, 4 s,
 * ...) on a network error, a timeout or a 5xx/429. Never throws: returns each URL's outcome.
 */
export async function deliverWebhooks(
  urls: string[],
  body: unknown,
  opts: { retries: number; secret: string; timeoutMs?: number },
  log: Logger,
): Promise<WebhookDelivery[]> {
  const payload = JSON.stringify(body);
  return Promise.all(
    urls.map(async (url): Promise<WebhookDelivery> => {
      const host = webhookHost(url);
      let status: number | null = null;
      for (let attempt = 0; attempt <= opts.retries; attempt++) {
        if (attempt > 0) await sleep(1000 * 2 ** (attempt - 1));
        const timestamp = String(Math.floor(Date.now() / 1000));
        const done = (outcome: WebhookDelivery['outcome']) => ({ host, outcome, status, attempts: attempt + 1, at: new Date().toISOString() });
        try {
          const res = await fetch(url, {
            method: 'POST',
            headers: {
              'content-type': 'application/json',
              'user-agent': 'flume-service',
              'x-flume-timestamp': timestamp,
              'x-flume-signature': signature(opts.secret, timestamp, payload),
            },
            body: payload,
            signal: AbortSignal.timeout(opts.timeoutMs ?? 5000),
          });
          await res.arrayBuffer();
          status = res.status;
          if (res.ok) return done('delivered');
          if (res.status < 500 && res.status !== 429) {
            log.warn({ host, status: res.status }, 'webhook refused the incident; not retrying');
            return done('refused');
          }
          log.warn({ host, status: res.status, attempt }, 'webhook failed');
        } catch (err) {
          log.warn({ host, err: (err as Error).message, attempt }, 'webhook failed');
        }
        if (attempt === opts.retries) {
          log.error({ host }, 'webhook gave up after retries');
          return done('failed');
        }
      }
      return { host, outcome: 'failed', status, attempts: opts.retries + 1, at: new Date().toISOString() };
    }),
  );
}
