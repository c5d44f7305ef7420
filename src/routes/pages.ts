import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { PROJECT_ROOT } from '../config-kinds.js';

/**
 * The dashboard's Content-Security-Policy: its one inline script by hash, calls to this API only,
 * and never inside a frame (clickjacking). Inline style attributes are allowed (the page builds them).
 */
function dashboardPolicy(html: string): string {
  const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => `'sha256-${createHash('sha256').update(m[1]!).digest('base64')}'`);
  return [
    "default-src 'self'",
    `script-src ${scripts.join(' ') || "'none'"}`,
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** Open pages: the dashboard (it asks for a token itself) and the OpenAPI document. /docs is @fastify/swagger-ui's. */
export async function pageRoutes(app: FastifyInstance): Promise<void> {
  const dashboard = readFileSync(join(PROJECT_ROOT, 'templates', 'dashboard.html'), 'utf8');
  const policy = dashboardPolicy(dashboard);
  app.get('/dashboard', { schema: { hide: true } }, async (_req, reply) =>
    reply
      .type('text/html; charset=utf-8')
      .header('content-security-policy', policy)
      .header('x-frame-options', 'DENY')
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .send(dashboard),
  );
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
