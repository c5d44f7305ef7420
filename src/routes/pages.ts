import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { PROJECT_ROOT } from '../config.js';
import { buildOpenApi } from '../http/openapi.js';

/** Open pages: the dashboard (it asks for a token itself), the API docs and their document. */
export async function pageRoutes(app: FastifyInstance): Promise<void> {
  const page = (name: string) => readFileSync(join(PROJECT_ROOT, 'templates', name), 'utf8');
  const dashboard = page('dashboard.html');
  const docs = page('docs.html');
  const openapi = buildOpenApi();
  app.get('/dashboard', async (_req, reply) => reply.type('text/html; charset=utf-8').send(dashboard));
  app.get('/docs', async (_req, reply) => reply.type('text/html; charset=utf-8').send(docs));
  app.get('/openapi.json', async () => openapi);
}
