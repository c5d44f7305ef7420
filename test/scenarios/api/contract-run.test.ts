import { connect } from 'node:net';
import FindMyWay from 'find-my-way';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, tempDir, type Harness } from '../../helpers/harness.js';
import { openApiDocument } from '../../helpers/openapi.js';
import { portRange } from '../../helpers/ports.js';
import { checkAnswer, PrismProxy, violationsOf, type Violation } from '../../helpers/prism.js';
import { until } from '../../helpers/wait.js';

// A realistic run of requests, good and bad, through Stoplight Prism in proxy mode over the
// document the API serves: any answer the document does not describe (a status an operation does
// not declare, a body off its schema, a header it breaks) is a violation Prism reports.
let h: Harness;
let prism: PrismProxy;
let doc: Record<string, unknown>;
let apiPort = 0;
beforeAll(async () => {
  // A short header timeout, so the run can see its 408.
  h = await startHarness({ PORT_RANGE: await portRange(), API_HEADERS_TIMEOUT_MS: '1000', API_REQUEST_TIMEOUT_MS: '1000', API_MAX_STREAMS_PER_TOKEN: '1' });
  const base = await h.app.listen({ port: 0, host: '127.0.0.1' });
  apiPort = Number(new URL(base).port);
  doc = await openApiDocument(pino({ level: 'silent' }));
  prism = new PrismProxy(doc, base, tempDir('prism'));
  await prism.start();
}, 60_000);
afterAll(async () => {
  await prism?.stop();
  await h?.close();
});

interface Seen {
  request: string;
  method: string;
  path: string;
  /** A request the document does not describe (the run's bad ones): Prism may say so; its answer must still be declared. */
  bad: boolean;
  status: number;
  headers: Headers;
  body: string;
  violations: Violation[];
}

const seen: Seen[] = [];

/** One request through Prism; `bad` marks one that breaks the document on purpose. */
async function call(method: string, path: string, opts: { body?: unknown; raw?: string; headers?: Record<string, string>; token?: string | null; bad?: boolean } = {}): Promise<Seen> {
  const token = opts.token === undefined ? h.tokenFor('admin') : opts.token;
  const headers: Record<string, string> = { ...(token ? { authorization: `Bearer ${token}` } : {}), ...opts.headers };
  let body: string | undefined = opts.raw;
  if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(`${prism.url}${path}`, { method, headers, body, signal: AbortSignal.timeout(60_000) });
  const text = await res.text();
  const s: Seen = { request: `${method} ${path.slice(0, 120)}`, method, path, bad: opts.bad ?? false, status: res.status, headers: res.headers, body: text, violations: violationsOf(res.headers) };
  seen.push(s);
  return s;
}

/** One request written to the API's socket as it is (what Prism cannot carry), its answer checked by Prism's validator against `operation`. */
async function direct(operation: [string, string], request: string): Promise<Seen> {
  const text = await new Promise<string>((resolve, reject) => {
    let got = '';
    const sock = connect(apiPort, '127.0.0.1', () => sock.write(request));
    sock.on('data', (d: Buffer) => (got += d.toString()));
    sock.on('end', () => resolve(got));
    sock.on('error', reject);
    sock.setTimeout(30_000, () => sock.destroy(new Error('no answer in 30 s')));
    // One request per connection: the answer ends it (keep-alive answers are read to their length).
    sock.on('data', () => {
      const [head, rest] = got.split('\r\n\r\n', 2);
      const length = /content-length: *(\d+)/i.exec(head ?? '')?.[1];
      if (rest !== undefined && length !== undefined && Buffer.byteLength(rest) >= Number(length)) sock.end();
    });
  });
  const [head = '', body = ''] = text.split('\r\n\r\n', 2);
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers = new Headers(lines.map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()] as [string, string]));
  const status = Number(statusLine.split(' ')[1]);
  const violations = await checkAnswer(doc, operation[0], operation[1], { status, headers: Object.fromEntries(headers), body: JSON.parse(body) as unknown });
  const s: Seen = { method: operation[0], path: '', request: `${operation.join(' ')} (direct: ${request.split('\r\n')[0]!.slice(0, 60)})`, bad: true, status, headers, body, violations };
  seen.push(s);
  return s;
}

const T = '/v1/api/contract/orders';

describe('the contract over a realistic run', () => {
  it('answers only what the OpenAPI document declares, bad requests included', async () => {
    // Open endpoints.
    await call('GET', '/healthz', { token: null });
    await call('GET', '/version', { token: null });
    await call('GET', '/readyz', { token: null });
    await call('GET', '/metrics', { token: null });
    await call('GET', '/metrics', { token: null });

    // A table's life.
    expect.soft((await call('POST', `${T}/create`, { body: { sink: 'logger' } })).status).toBe(201);
    expect.soft((await call('POST', `${T}/create`, { body: { sink: 'logger' } })).status).toBe(200);
    expect.soft((await call('POST', `${T}/create`, { body: { sink: 'logger', options: { maxBytesToLog: 32 } } })).status).toBe(409);
    const agent = await call('GET', T);
    const etag = agent.headers.get('etag')!;
    await call('GET', `${T}/status`);
    await call('GET', `${T}/status?fresh=true`);
    const config = await call('GET', `${T}/config`);
    expect(config.status).toBe(200);
    // Conditional GETs: the current ETag is 304 with no body; another (well-formed) tag is 200.
    for (const url of [T, `${T}/config`]) {
      const unchanged = await call('GET', url, { headers: { 'if-none-match': etag } });
      expect.soft(unchanged.status, url).toBe(304);
      expect.soft([unchanged.body, unchanged.headers.get('content-type'), unchanged.headers.get('content-length'), unchanged.headers.get('etag')], url).toEqual(['', null, null, etag]);
      expect.soft((await call('GET', url, { headers: { 'if-none-match': '"stale-0"' } })).status, url).toBe(200);
    }
    expect.soft((await call('PATCH', `${T}/config`, { body: { options: { maxBytesToLog: 64 } }, headers: { 'if-match': etag } })).status).toBe(200);
    expect.soft((await call('PATCH', `${T}/config`, { body: { options: { maxBytesToLog: 65 } }, headers: { 'if-match': etag } })).status).toBe(412);
    expect.soft((await call('PATCH', `${T}/config`, { body: { options: { maxBytesToLog: 65 } }, headers: { 'if-match': '"stale-0"' } })).status).toBe(412);
    expect.soft((await call('PATCH', `${T}/config`, { body: { options: { maxBytesToLog: 65 } }, headers: { 'if-match': 'stale' }, bad: true })).status).toBe(400);
    expect.soft((await call('PATCH', `${T}/config?dryRun=true`, { body: { options: { maxBytesToLog: 66 } } })).status).toBe(200);
    await call('GET', `${T}/config/revisions`);
    // If-None-Match on a change (RFC 9110 13.1.2): * is "only if there is none", a tag "only if it is not this one".
    const current = (await call('GET', `${T}/config`)).headers.get('etag')!;
    expect.soft((await call('PUT', T, { body: { sink: 'logger' }, headers: { 'if-none-match': '*' } })).status).toBe(412);
    expect.soft((await call('PATCH', `${T}/config`, { body: { options: { maxBytesToLog: 70 } }, headers: { 'if-none-match': current } })).status).toBe(412);
    expect.soft((await call('GET', `${T}/config`)).headers.get('etag')).toBe(current);
    const fresh = await call('PUT', '/v1/api/contract/fresh', { body: { sink: 'logger' }, headers: { 'if-none-match': '*' } });
    expect.soft(fresh.status).toBe(201);
    expect.soft((await call('PUT', '/v1/api/contract/fresh', { body: { sink: 'logger' }, headers: { 'if-none-match': '*' } })).status).toBe(412);
    expect.soft((await call('DELETE', '/v1/api/contract/fresh?force=true')).status).toBe(200);
    await call('POST', `${T}/stop`);
    const later = await call('POST', `${T}/start`, { headers: { prefer: 'respond-async' } });
    expect(later.status).toBe(202);
    const id = later.headers.get('x-operation-id')!;
    await until(async () => JSON.parse((await call('GET', `/v1/api/operations/${id}`)).body).operation?.state, (s) => s === 'done', 120_000, 500);
    await call('POST', `${T}/restart`);
    await call('PUT', `${T}/config?dryRun=true`, { body: { sink: 'logger', options: { maxBytesToLog: 80 } } });
    await call('POST', `${T}/move`, { body: {} });
    await call('POST', `${T}/incidents/${'0'.repeat(8)}-0000-4000-8000-${'0'.repeat(12)}/ack`);
    await call('POST', `${T}/quarantine/replay`, { body: {} });
    await call('DELETE', `${T}/quarantine`);
    await call('POST', `/v1/api/operations/${id}/cancel`);
    await call('POST', `${T}/pause`);
    await call('POST', `${T}/resume`);
    await call('POST', `${T}/config/rollback`, { body: {} });
    await call('GET', `${T}/logs?lines=5`);
    await call('GET', `${T}/loggers`);
    expect.soft((await call('PUT', `${T}/loggers/org.apache.flume.sink`, { body: { level: 'DEBUG', save: true } })).status).toBe(200);
    expect.soft((await call('PUT', `${T}/loggers/root`, { body: { level: 'LOUD' }, bad: true })).status).toBe(400);
    await call('DELETE', `${T}/loggers/org.apache.flume.sink`);
    expect.soft((await call('PUT', '/v1/api/quotas/contract', { body: { eventsPerSecond: 1000, bytesPerDay: 1_000_000 } })).status).toBe(200);
    expect.soft((await call('PUT', '/v1/api/quotas/contract', { body: { eventsPerSecond: 0 }, bad: true })).status).toBe(400);
    await call('GET', '/v1/api/quotas');
    await call('GET', '/v1/api/quotas/contract');
    await call('DELETE', '/v1/api/quotas/contract');
    expect.soft((await call('POST', '/v1/api/contract/taken/adopt', { body: { spec: { sink: 'logger' }, port: 80, checkpointDir: '/x', dataDir: '/y' }, bad: true })).status).toBe(400);
    expect.soft((await call('POST', `${T}/adopt`, { body: { spec: { sink: 'logger' }, port: 20000, checkpointDir: '/nonexistent/c', dataDir: '/nonexistent/d' } })).status).toBe(409);
    await call('GET', `${T}/quarantine`);
    await call('GET', `${T}/trace/no-such-request`);
    await call('GET', `${T}/history`);
    await call('GET', `${T}/incidents`);
    await call('GET', '/v1/api/operations?kind=table');

    // The fleet and the listing, conditional.
    const listed = await call('GET', '/v1/api/services');
    expect.soft((await call('GET', '/v1/api/services', { headers: { 'if-none-match': listed.headers.get('etag')! } })).status).toBe(304);
    await call('GET', '/v1/api/summary');
    await call('GET', '/v1/api/incidents');
    await call('GET', '/v1/api/audit?limit=5');
    await call('GET', '/v1/api/audit/refused');
    await call('GET', '/v1/api/sinks');
    await call('GET', '/v1/api/nodes');
    await call('PUT', '/v1/api/nodes/h9/state', { body: { state: 'draining' } });
    await call('POST', '/v1/api/nodes/h9/drain', { body: {} });
    await call('GET', '/v1/api/nodes/h9/incidents');
    await call('POST', `/v1/api/nodes/h9/incidents/${'0'.repeat(10)}-${'0'.repeat(8)}/ack`);
    await call('POST', '/v1/api/reconcile');
    // Fleet as code: the export applies as it is (nothing to do); a preview; a document naming a profile it lacks.
    const exported = JSON.parse((await call('GET', '/v1/api/fleet?db=contract')).body).fleet as unknown;
    expect.soft((await call('PUT', '/v1/api/fleet?db=contract&dryRun=true', { body: exported })).status).toBe(200);
    expect.soft((await call('PUT', '/v1/api/fleet?db=contract', { body: exported })).status).toBe(202);
    expect.soft((await call('PUT', '/v1/api/fleet?db=contract', { body: { tables: { 'contract.orders': { profiles: ['nope'] } } }, bad: true })).status).toBe(400);
    for (const op of ['start', 'stop', 'pause', 'resume', 'delete']) await call('POST', `/v1/api/bulk/${op}`, { body: { db: 'nobody' } });
    const bulk = await call('POST', '/v1/api/bulk/restart', { body: { db: 'contract', concurrency: 2 } });
    expect(bulk.status).toBe(202);
    const bulkId = (JSON.parse(bulk.body) as { operation: { id: string } }).operation.id;
    await until(async () => JSON.parse((await call('GET', `/v1/api/operations/${bulkId}`)).body).operation?.state, (s) => s === 'done', 120_000, 500);

    // Tokens.
    await call('POST', '/v1/api/token', { body: { username: 'contract-sender', scope: ['contract'] } });
    await call('GET', '/v1/api/token');
    await call('DELETE', '/v1/api/token/contract-sender');
    await call('DELETE', '/v1/api/token/nobody');
    await call('POST', '/v1/api/control-tokens/revoke', { body: { jti: 'no-such-jti' } });

    // Bad requests, each one an answer the document must describe too.
    const bad = { bad: true };
    expect.soft((await call('POST', `/v1/api/contract/${'x'.repeat(300)}/create`, { body: { sink: 'logger' }, ...bad })).status).toBe(414);
    expect.soft((await call('POST', '/v1/api/contract/big/create', { raw: JSON.stringify({ sink: 'logger', pad: 'x'.repeat(1_200_000) }), headers: { 'content-type': 'application/json' }, ...bad })).status).toBe(413);
    expect.soft((await call('POST', '/v1/api/contract/bad-name!/create', { body: { sink: 'logger' }, ...bad })).status).toBe(400);
    expect.soft((await call('POST', '/v1/api/contract/fields/create', { body: { sink: 'logger', colour: 'blue' }, ...bad })).status).toBe(400);
    expect.soft((await call('POST', '/v1/api/contract/sink/create', { body: { sink: 'carrier-pigeon' }, ...bad })).status).toBe(400);
    expect.soft((await call('GET', '/v1/api/services', { token: null, ...bad })).status).toBe(401);
    expect.soft((await call('GET', '/v1/api/services', { token: 'not-a-jwt', ...bad })).status).toBe(401);
    expect.soft((await call('POST', `${T}/stop`, { token: h.tokenFor('viewer'), ...bad })).status).toBe(403);
    expect.soft((await call('GET', '/v1/api/summary?limit=x', bad)).status).toBe(400);
    expect.soft((await call('GET', '/v1/api/services?colour=blue', bad)).status).toBe(400);
    expect.soft((await call('GET', '/v1/api/operations/nope', bad)).status).toBe(400);
    expect.soft((await call('PUT', '/v1/api/nodes/h9/state', { body: { state: 'cordoned' }, ...bad })).status).toBe(400);
    expect.soft((await call('POST', `${T}/create`, { body: { sink: 'logger' }, headers: { 'idempotency-key': 'bad key!' }, ...bad })).status).toBe(400);

    // A second event stream for a token that holds its one already: 429 with Retry-After.
    const streamer = h.tokenFor('viewer');
    const held = new AbortController();
    const first = await fetch(`http://127.0.0.1:${apiPort}/v1/api/events`, { headers: { authorization: `Bearer ${streamer}` }, signal: held.signal });
    expect(first.status).toBe(200);
    const second = await call('GET', '/v1/api/events', { token: streamer, ...bad });
    held.abort();
    expect.soft([second.status, second.headers.get('retry-after')]).toEqual([429, '5']);

    // What Prism cannot carry, straight to the API's socket.
    const host = 'Host: 127.0.0.1\r\n';
    const auth = `Authorization: Bearer ${h.tokenFor('admin')}\r\n`;
    const json = '{"sink":';
    expect.soft((await direct(['POST', '/v1/api/{db}/{table}/create'], `POST /v1/api/contract/json/create HTTP/1.1\r\n${host}${auth}Content-Type: application/json\r\nContent-Length: ${json.length}\r\nConnection: close\r\n\r\n${json}`)).status).toBe(400);
    expect.soft((await direct(['GET', '/v1/api/services'], `GET /v1/api/services HTTP/1.1\r\nHost: rebound.example\r\n${auth}Connection: close\r\n\r\n`)).status).toBe(421);
    expect.soft((await direct(['POST', '/v1/api/{db}/{table}/create'], `POST /v1/api/%E0%A4%A/t/create HTTP/1.1\r\n${host}${auth}Connection: close\r\n\r\n`)).status).toBe(400);
    expect.soft((await direct(['GET', '/v1/api/services'], `GET /v1/api/services HTTP/1.1\r\n${host}X-Padding: ${'x'.repeat(20_000)}\r\n\r\n`)).status).toBe(431);
    expect.soft((await direct(['GET', '/v1/api/services'], `GET /v1/api/services HTTP/1.1\r\n${host}`)).status).toBe(408);

    // A method the path does not take: 405 naming those it does, in the error shape.
    for (const [method, path, allow] of [
      ['DELETE', '/v1/api/services', 'GET, HEAD'],
      ['GET', `${T}/create`, 'POST'],
      ['POST', `${T}/status`, 'GET, HEAD'],
      ['PATCH', '/v1/api/token', 'GET, HEAD, POST'],
    ] as const) {
      const r = await call(method, path, bad);
      expect.soft(r.status, `${method} ${path}`).toBe(405);
      expect.soft(r.headers.get('allow'), `${method} ${path}`).toBe(allow);
      expect.soft(JSON.parse(r.body), `${method} ${path}`).toMatchObject({ code: 10050, error: 'METHOD_NOT_ALLOWED', requestId: expect.any(String) });
    }
    expect.soft((await call('GET', '/v1/api/nope', bad)).status).toBe(404);

    // The end of the table.
    expect.soft((await call('DELETE', `${T}?force=true`)).status).toBe(200);
    expect.soft((await call('GET', `${T}/status`)).status).toBe(404);

    // Prism's verdict: no answer the document does not describe; no good request it does not describe.
    const undeclared = seen.flatMap((x) => x.violations.filter((v) => v.location[0] === 'response').map((v) => `${x.request} -> ${x.status}: ${v.message}`));
    const offDocument = seen.filter((x) => !x.bad).flatMap((x) => x.violations.map((v) => `${x.request}: ${v.location.join('.')} ${v.message}`));
    expect(undeclared).toEqual([]);
    // Prism did check: it found what is wrong with the bad requests (an overlong name, an unknown field...).
    expect(seen.filter((x) => x.bad && x.violations.some((v) => v.location[0] === 'request')).length).toBeGreaterThanOrEqual(8);
    expect(offDocument).toEqual([]);
    // Every operation the document declares was called at least once (a new one must join this run).
    const router = FindMyWay();
    const doc_ = doc as { paths: Record<string, Record<string, unknown>> };
    for (const [path, ops] of Object.entries(doc_.paths)) for (const m of Object.keys(ops)) router.on(m.toUpperCase() as 'GET', path.replace(/\{(\w+)\}/g, ':$1'), () => undefined, { key: `${m.toUpperCase()} ${path}` });
    const called = new Set(seen.map((x) => (router.find(x.method as 'GET', x.path.split('?')[0]!)?.store as { key: string } | undefined)?.key));
    const declared = Object.entries(doc_.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    expect(declared.length).toBeGreaterThanOrEqual(50);
    expect(declared.filter((k) => !called.has(k))).toEqual([]);
    // It saw what it was meant to: every status above, 304 and 405 included.
    expect(new Set(seen.map((x) => x.status))).toEqual(new Set([200, 201, 202, 304, 400, 401, 403, 404, 405, 408, 409, 412, 413, 414, 421, 429, 431]));
  }, 300_000);
});
