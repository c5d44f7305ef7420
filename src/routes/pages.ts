import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { PROJECT_ROOT } from '../config.js';

/** Open pages: the dashboard (it asks for a token itself) and the OpenAPI document. /docs is @fastify/swagger-ui's. */
export async function pageRoutes(app: FastifyInstance): Promise<void> {
  const dashboard = readFileSync(join(PROJECT_ROOT, 'templates', 'dashboard.html'), 'utf8');
  app.get('/dashboard', { schema: { hide: true } }, async (_req, reply) => reply.type('text/html; charset=utf-8').send(dashboard));
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
