import { createHmac } from 'node:crypto';

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
 * The older signature (kept for one release beside the Standard Webhooks headers): hex HMAC-SHA256 of "<timestamp>.<body>" with the shared
 * secret, sent as `X-Flume-Signature: sha256=<hex>` with `X-Flume-Timestamp: <unix seconds>`.
 */
export function signature(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}
