import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../../helpers/harness.js';

// One host needs no etcd (issue 23): the nodes API lists this host alone and refuses cluster-only changes.
let h: Harness;
beforeAll(async () => {
  h = await startHarness({ NODE_ID: 'solo' });
});
afterAll(async () => {
  await h?.close();
});

describe('a single host', () => {
  it('lists itself as the one active node, with its capacity, to any reader', async () => {
    const r = await h.api('GET', '/v1/api/nodes', undefined, h.tokenFor('viewer'));
    expect(r.statusCode, r.body).toBe(200);
    const body = r.json() as { clustered: boolean; nodes: Array<Record<string, unknown>> };
    expect(body.clustered).toBe(false);
    expect(body.nodes).toEqual([expect.objectContaining({ id: 'solo', state: 'active', alive: true, self: true, sameKeys: true })]);
    expect(body.nodes[0]!.capacity).toMatchObject({ agents: 0, freePorts: expect.any(Number), cpuCores: expect.any(Number) });
  });

  it('answers 409 NOT_CLUSTERED to a membership change, and 403 to a non-admin', async () => {
    const r = await h.api('PUT', '/v1/api/nodes/solo/state', { state: 'draining' });
    expect(r.statusCode).toBe(409);
    expect(r.json()).toMatchObject({ error: 'NOT_CLUSTERED' });
    expect((await h.api('PUT', '/v1/api/nodes/solo/state', { state: 'draining' }, h.tokenFor('operator'))).statusCode).toBe(403);
  });
});
