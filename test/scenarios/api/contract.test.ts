import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import SwaggerParser from '@apidevtools/swagger-parser';
import createClient from 'openapi-fetch';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { paths } from '../../../clients/typescript/flume-service.js';
import { PROJECT_ROOT } from '../../../src/config-kinds.js';
import { startHarness, type Harness } from '../../helpers/harness.js';
import { clientTypes, openApiDocument } from '../../helpers/openapi.js';
import { portRange } from '../../helpers/ports.js';
import { until } from '../../helpers/wait.js';

// The document cannot drift from the server (the server makes it from each route's schemas), the
// client cannot drift from the document (regenerated here and compared), and the walk-through
// below is type-checked against that client (npm test type-checks test/) and run against a
// real stack.
let h: Harness;
let base: string;
beforeAll(async () => {
  h = await startHarness({ PORT_RANGE: await portRange() });
  base = await h.app.listen({ port: 0, host: '127.0.0.1' });
});
afterAll(async () => {
  await h?.close();
});

describe('the API contract', () => {
  it('serves an OpenAPI document a standard validator accepts, and the checked-in client is generated from it', async () => {
    const served = (await h.inject({ method: 'GET', url: '/docs/json' })).json() as Record<string, unknown>;
    await expect(SwaggerParser.validate(structuredClone(served) as never)).resolves.toBeTruthy();
    expect(served).toMatchObject({ openapi: expect.stringMatching(/^3\./) });
    // The client in the repository is what the document generates today (`npm run client` updates it).
    const doc = await openApiDocument(pino({ level: 'silent' }));
    const fresh = await clientTypes(doc);
    const kept = readFileSync(join(PROJECT_ROOT, 'clients', 'typescript', 'flume-service.d.ts'), 'utf8');
    expect(fresh === kept, 'clients/typescript/flume-service.d.ts is stale: run npm run client').toBe(true);
  });

  it('drives the README walk-through with the generated client', async () => {
    const api = createClient<paths>({ baseUrl: base, headers: { authorization: `Bearer ${h.tokenFor('admin')}` } });
    const table = { db: 'contract', table: 'orders' };

    const created = await api.POST('/v1/api/{db}/{table}/create', { params: { path: table }, body: { sink: 'logger' } });
    expect(created.response.status, JSON.stringify(created.error)).toBe(201);
    expect(created.data && 'accepting' in created.data && created.data.accepting).toBe(true);
    expect(created.response.headers.get('location')).toBe('/v1/api/contract/orders');

    const again = await api.POST('/v1/api/{db}/{table}/create', { params: { path: table }, body: { sink: 'logger' } });
    expect(again.response.status).toBe(200);

    const agent = await api.GET('/v1/api/{db}/{table}', { params: { path: table } });
    expect(agent.data?.agent.program).toBe('flume-contract-orders');
    const etag = agent.response.headers.get('etag')!;

    const changed = await api.PATCH('/v1/api/{db}/{table}/config', { params: { path: table }, body: { options: { maxBytesToLog: 64 } }, headers: { 'if-match': etag } });
    expect(changed.data && 'outcome' in changed.data && changed.data.outcome).toBe('applied');
    const stale = await api.PATCH('/v1/api/{db}/{table}/config', { params: { path: table }, body: { options: { maxBytesToLog: 65 } }, headers: { 'if-match': etag } });
    expect(stale.response.status).toBe(412);
    expect(stale.error?.error).toBe('PRECONDITION_FAILED');

    const stopped = await api.POST('/v1/api/{db}/{table}/stop', { params: { path: table } });
    expect(stopped.data && 'state' in stopped.data && stopped.data.state).toBe('STOPPED');
    const later = await api.POST('/v1/api/{db}/{table}/start', { params: { path: table }, headers: { prefer: 'respond-async' } });
    expect(later.response.status).toBe(202);
    const id = later.response.headers.get('x-operation-id')!;
    const op = await until(async () => (await api.GET('/v1/api/operations/{id}', { params: { path: { id } } })).data?.operation, (o) => o?.state === 'done', 120_000, 250);
    expect(op?.answer?.status).toBe(200);

    const listed = await api.GET('/v1/api/services', { params: { query: { db: 'contract' } } });
    expect(listed.data?.agents.map((a) => a.table)).toEqual(['orders']);
    const ops = await api.GET('/v1/api/operations', { params: { query: { kind: 'table' } } });
    expect(ops.data?.operations[0]?.id).toBe(id);

    const deleted = await api.DELETE('/v1/api/{db}/{table}', { params: { path: table, query: { force: 'true' } } });
    expect(deleted.response.status).toBe(200);
    const gone = await api.GET('/v1/api/{db}/{table}/status', { params: { path: table } });
    expect(gone.response.status).toBe(404);
    expect(gone.error).toMatchObject({ error: 'AGENT_NOT_FOUND', requestId: gone.response.headers.get('x-request-id') });
  }, 180_000);
});
