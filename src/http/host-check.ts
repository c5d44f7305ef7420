import type { FastifyInstance } from 'fastify';
import { misdirected } from '../errors.js';

/** Names every API answers for, whatever API_ALLOWED_HOSTS says. */
const LOOPBACK = ['localhost', '127.0.0.1', '[::1]'];
/** Health probes answer for any Host: load balancers send the address they connect to. */
export const ANY_HOST = new Set(['/healthz', '/readyz']);

/**
 * Answers 421 MISDIRECTED_REQUEST to a request whose Host is not one this API answers for:
 * loopback names, API_HOST (unless it is a wildcard address) and `allowed` (an entry without a
 * port matches any port; '*' turns the check off). A browser page whose DNS name was rebound to
 * this address sends its own name as Host, so it cannot read /metrics or the table names.
 */
export function registerHostCheck(app: FastifyInstance, apiHost: string, allowed: string[]): void {
  if (allowed.includes('*')) return;
  const names = new Set([...LOOPBACK, ...allowed]);
  if (apiHost !== '0.0.0.0' && apiHost !== '::') names.add(apiHost.includes(':') ? `[${apiHost}]` : apiHost.toLowerCase());
  app.addHook('onRequest', async (req) => {
    if (ANY_HOST.has(req.url.split('?')[0]!)) return;
    const host = (req.headers.host ?? '').toLowerCase();
    const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':')[0]!;
    if (!names.has(host) && !names.has(name)) throw misdirected(host);
  });
}
