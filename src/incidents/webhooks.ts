import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';

/**
 * POSTs `body` as JSON to every URL, each with up to `retries` retries (1 s, 2 s, 4 s, ...)
 * on a network error, a timeout or a 5xx/429. Never throws: failures are logged.
 */
export async function deliverWebhooks(urls: string[], body: unknown, retries: number, log: Logger, timeoutMs = 5000): Promise<void> {
  const payload = JSON.stringify(body);
  await Promise.all(
    urls.map(async (url) => {
      for (let attempt = 0; attempt <= retries; attempt++) {
        if (attempt > 0) await sleep(1000 * 2 ** (attempt - 1));
        try {
          const res = await fetch(url, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'user-agent': 'flume-service' },
            body: payload,
            signal: AbortSignal.timeout(timeoutMs),
          });
          await res.arrayBuffer();
          if (res.ok) return;
          if (res.status < 500 && res.status !== 429) {
            log.warn({ url, status: res.status }, 'webhook refused the incident; not retrying');
            return;
          }
          log.warn({ url, status: res.status, attempt }, 'webhook failed');
        } catch (err) {
          log.warn({ url, err: (err as Error).message, attempt }, 'webhook failed');
        }
      }
      log.error({ url }, 'webhook gave up after retries');
    }),
  );
}
