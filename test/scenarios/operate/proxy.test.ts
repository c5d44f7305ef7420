import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config-load.js';
import { startHarness, type Harness } from '../../helpers/harness.js';
import { portRange } from '../../helpers/ports.js';
import { until } from '../../helpers/wait.js';

// Behind a proxy the audit trail names the client, not the proxy; X-Forwarded-For from anyone
// else is not believed.
let behind: Harness;
let direct: Harness;
beforeAll(async () => {
  behind = await startHarness({ PORT_RANGE: await portRange(20), TRUST_PROXY: '127.0.0.1' });
  direct = await startHarness({ PORT_RANGE: await portRange(20) });
});
afterAll(async () => {
  await behind?.close();
  await direct?.close();
});

const auditIp = async (h: Harness) =>
  (await until(async () => (await h.inject({ method: 'GET', url: '/v1/api/audit?action=reconcile' })).json().entries as Array<{ ip: string }>, (e) => e.length > 0, 5000)).map((e) => e.ip)[0];

describe('TRUST_PROXY', () => {
  it("takes the client's address from a trusted proxy's X-Forwarded-For, and from nobody else", async () => {
    for (const h of [behind, direct]) {
      expect((await h.inject({ method: 'POST', url: '/v1/api/reconcile', headers: { 'x-forwarded-for': '203.0.113.7' }, remoteAddress: '127.0.0.1' })).statusCode).toBe(200);
    }
    expect(await auditIp(behind)).toBe('203.0.113.7');
    expect(await auditIp(direct)).toBe('127.0.0.1');
    expect(() => loadConfig({ TRUST_PROXY: 'everyone' })).toThrow(/TRUST_PROXY/);
  });
});
