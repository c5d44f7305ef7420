import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Installation } from '../../helpers/installation.js';

// The gateway's access log on (GATEWAY_ACCESS_LOG=stdout), written far past its budget, fast:
// requests whose logged line is ~8 KB (a long query string), 10 x the budget in all (1.2 GB: a week of
// 200-byte lines at 1,000 requests/s is 120 GB, the same rotation at work for longer). What stays
// on disk is var/log/gateway.log and its backups, within supervisor.conf's 20 MB x (1 + 5).
const BUDGET = 20 * 1024 * 1024 * 6;
let inst: Installation;

beforeAll(async () => {
  inst = await Installation.fresh({ GATEWAY_ACCESS_LOG: 'stdout' });
  await inst.up();
}, 180_000);
afterAll(async () => {
  await inst?.destroy();
}, 120_000);

const gatewayLogs = () =>
  readdirSync(join(inst.varDir, 'log'))
    .filter((f) => /^gateway\.log(\.\d+)?$/.test(f))
    .map((f) => ({ f, size: statSync(join(inst.varDir, 'log', f)).size }));

describe('logs within their disk budget', () => {
  it('an access log written at 10 x its budget keeps at most 20 MB x 6 on disk', async () => {
    const query = 'q='.padEnd(7800, 'x');
    const line = `/ingest/logs/volume?${query}`;
    const target = Math.ceil((BUDGET * 10) / (line.length + 150));
    const agent = new Agent({ keepAlive: true, maxSockets: 16 });
    const url = new URL(inst.gateway);
    const post = () =>
      new Promise<number>((resolve, reject) => {
        const req = request({ host: url.hostname, port: url.port, path: line, method: 'POST', agent, headers: { authorization: 'Bearer nope', 'content-length': 2 } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end('[]');
      });
    let sent = 0;
    const statuses = new Map<number, number>();
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (sent < target) {
          sent++;
          const status = await post();
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
        }
      }),
    );
    agent.destroy();
    // Refused (401, then 429 once the address keeps sending bad tokens): each one a logged line.
    expect([...statuses.keys()].every((c) => c === 401 || c === 429), JSON.stringify([...statuses])).toBe(true);
    // supervisord has written what nginx wrote; the files stay within the budget, rotated.
    const logs = gatewayLogs();
    const total = logs.reduce((n, l) => n + l.size, 0);
    console.log(`access log: ${sent} requests of ~${line.length + 150} bytes logged (${(sent * (line.length + 150) / 1024 / 1024).toFixed(0)} MB); on disk ${logs.length} files, ${(total / 1024 / 1024).toFixed(1)} MB`);
    expect(logs.map((l) => l.f).sort()).toEqual(['gateway.log', 'gateway.log.1', 'gateway.log.2', 'gateway.log.3', 'gateway.log.4', 'gateway.log.5']);
    expect(total).toBeLessThanOrEqual(BUDGET + 64 * 1024);
    for (const l of logs) expect(l.size).toBeLessThanOrEqual(20 * 1024 * 1024 + 64 * 1024);
    // No other file under var/log grew with it (no stray access log of nginx's own).
    const others = readdirSync(join(inst.varDir, 'log')).filter((f) => !/^gateway\.log/.test(f)).map((f) => statSync(join(inst.varDir, 'log', f)).size);
    expect(Math.max(0, ...others)).toBeLessThan(5 * 1024 * 1024);
  }, 300_000);
});
