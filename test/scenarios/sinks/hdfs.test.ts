import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentPaths } from '../../../src/store/paths.js';
import { TestGateway, ingest } from '../../helpers/gateway.js';
import { startHarness, type Harness } from '../../helpers/harness.js';
import { TestHdfs } from '../../helpers/hdfs.js';
import { freePort, until } from '../../helpers/wait.js';
import { portRange } from '../../helpers/ports.js';

// One real HDFS for the file (NameNode + DataNode from Maven Central's Hadoop), started once.
let hdfs: TestHdfs;
let h: Harness;
let gw: TestGateway;
let token: string;
const events = (...bodies: string[]) => bodies.map((body) => ({ headers: {}, body }));

/** Every line of every closed (rolled) file under the table's directory. */
async function delivered(table: string): Promise<{ files: string[]; lines: string[] }> {
  const files = (await hdfs.files(`/ingestion/shop/${table}`)).filter((f) => !f.endsWith('.tmp'));
  if (!files.length) return { files, lines: [] };
  const text = await hdfs.fs('-cat', ...files);
  return { files, lines: text.split('\n').filter(Boolean) };
}

beforeAll(async () => {
  hdfs = new TestHdfs();
  await hdfs.start();
  h = await startHarness({ PORT_RANGE: await portRange(), GATEWAY_PORT: String(await freePort()), FLEET_REFRESH_MS: '1000', AGENT_HEAP: '256m' });
  gw = new TestGateway(h.config);
  await gw.start();
  token = ((await h.api('POST', '/v1/api/token', { username: 'loader' })).json() as { token: string }).token;
});
afterAll(async () => {
  await gw?.stop();
  await h?.close();
  await hdfs?.destroy();
});

describe('the hdfs sink, against a real HDFS', () => {
  it('writes what the gateway accepted under /ingestion/<db>/<table>/<day>/<hour>, read back through the HDFS client', async () => {
    const r = await h.api('POST', '/v1/api/shop/orders/create', { sink: 'hdfs', options: { nameNode: hdfs.uri, rollInterval: 2 } });
    expect(r.statusCode).toBe(201);
    expect(r.json()).toMatchObject({ sink: 'hdfs', accepting: true });
    expect((await ingest(gw, 'shop', 'orders', token, events('h-1', 'h-2', 'h-3'))).status).toBe(200);
    const got = await until(() => delivered('orders'), (d) => d.lines.length >= 3, 90_000, 1000);
    expect(got.lines).toEqual(['h-1', 'h-2', 'h-3']);
    for (const f of got.files) expect(f).toMatch(/^\/ingestion\/shop\/orders\/\d{4}-\d{2}-\d{2}\/\d{2}\/ing\.\d+\.json$/);
    const pid = (await h.api('GET', '/v1/api/shop/orders/status')).json().pid as number;
    const rss = Number(execFileSync('ps', ['-o', 'rss=', '-p', String(pid)], { encoding: 'utf8' }).trim()) / 1024;
    console.log(`hdfs agent RSS after writing (-Xmx256m): ${rss.toFixed(0)} MiB`);
  });

  it('keeps events while HDFS is away, through a stop and a start of the agent, and delivers them once it is back', async () => {
    await hdfs.stop();
    const bodies = Array.from({ length: 10 }, (_, i) => `kept-${i}`);
    for (const b of bodies) expect((await ingest(gw, 'shop', 'orders', token, events(b))).status).toBe(200);
    const degraded = await until(
      async () => (await h.api('GET', '/v1/api/shop/orders/status')).json() as { health: string; healthReason: string },
      (s) => s.health === 'degraded',
      90_000,
      500,
    );
    expect(degraded.healthReason).toMatch(/the hdfs sink (fails to deliver|has drained nothing)/);
    // How late the data is: the oldest waiting event's age grows while HDFS is away.
    type Aged = { metrics: { oldestEventAgeSeconds: number | null; channelSize: number } | null };
    const age = async () => ((await h.api('GET', '/v1/api/shop/orders/status')).json() as Aged).metrics?.oldestEventAgeSeconds ?? null;
    const first = await until(age, (a) => a !== null && a >= 1, 30_000, 500);
    expect(await until(age, (a) => a !== null && a > first!, 30_000, 500)).toBeGreaterThan(first!);
    // The channel outlives the agent's JVM.
    expect((await h.api('POST', '/v1/api/shop/orders/stop')).statusCode).toBe(200);
    expect((await h.api('POST', '/v1/api/shop/orders/start')).statusCode).toBe(200);
    await hdfs.start();
    const got = await until(() => delivered('orders'), (d) => bodies.every((b) => d.lines.includes(b)), 120_000, 1000);
    for (const b of bodies) expect(got.lines).toContain(b);
    expect(got.lines.filter((l) => l.startsWith('h-'))).toEqual(['h-1', 'h-2', 'h-3']);
    expect(await until(age, (a) => a === 0, 30_000, 500)).toBe(0); // none waits
  });

  it('answers 422 SINK_UNAVAILABLE, changing nothing, where the hdfs jars are not installed', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'flume-svc-nohdfs-'));
    const bare = await startHarness({ PORT_RANGE: await portRange(), FLUME_HDFS_LIB_DIR: empty });
    try {
      const r = await bare.inject({ method: 'POST', url: '/v1/api/shop/nohdfs/create', payload: { sink: 'hdfs', options: { nameNode: hdfs.uri } } });
      expect(r.statusCode).toBe(422);
      expect(r.json()).toMatchObject({ error: 'SINK_UNAVAILABLE', message: expect.stringContaining('WITH_HDFS=1 bash scripts/up.sh') });
      expect(await bare.redis.hlen(bare.keys.ports())).toBe(0);
      // The sink catalog says the same before anyone tries.
      const hdfsInfo = (await bare.inject({ method: 'GET', url: '/v1/api/sinks' })).json().sinks.find((x: { name: string }) => x.name === 'hdfs');
      expect(hdfsInfo).toMatchObject({ available: false, unavailableReason: expect.stringContaining('WITH_HDFS=1') });
    } finally {
      await bare.close();
      rmSync(empty, { recursive: true, force: true });
    }
    // and where they are, the catalog says so and the agent's program has them on its class path
    expect((await h.inject({ method: 'GET', url: '/v1/api/sinks' })).json().sinks.find((x: { name: string }) => x.name === 'hdfs')).toMatchObject({ available: true, unavailableReason: null });
    expect(readFileSync(agentPaths(h.config, 'flume-shop-orders').programFile, 'utf8')).toContain(`${h.config.FLUME_HDFS_LIB_DIR}/*`);
  });
});
