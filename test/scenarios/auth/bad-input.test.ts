import { createHmac } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestGateway } from '../../helpers/gateway.js';
import { startHarness, type Harness } from '../../helpers/harness.js';
import { portRange } from '../../helpers/ports.js';
import { freePort } from '../../helpers/wait.js';

// Generated bad input, by the hundred: every answer is a 4xx with the documented error body,
// and nothing is written (files, Redis keys, supervisord programs, events at the agent).
let h: Harness;
let gw: TestGateway;
let api: string;
let ingestToken: string;

beforeAll(async () => {
  h = await startHarness({ PORT_RANGE: await portRange(), GATEWAY_PORT: String(await freePort()) });
  api = `http://127.0.0.1:${(await h.app.listen({ port: 0, host: '127.0.0.1' })).split(':').pop()}`;
  gw = new TestGateway(h.config);
  await gw.start();
  expect((await h.inject({ method: 'POST', url: '/v1/api/good/events/create', payload: { sink: 'logger' } })).statusCode).toBe(201);
  ingestToken = (await h.inject({ method: 'POST', url: '/v1/api/token', payload: { username: 'sender', scope: ['good'] } })).json().token;
});
afterAll(async () => {
  await gw?.stop();
  await h?.close();
});

async function snapshot() {
  const status = (await h.inject({ method: 'GET', url: '/v1/api/good/events/status?fresh=true' })).json();
  return {
    confD: readdirSync(h.config.confDir).sort(),
    services: readdirSync(h.config.servicesDir).sort(),
    var: readdirSync(h.config.varDir).filter((f) => f !== 'log').sort(),
    // What happened (supervisord's events, refused calls, the event stream's replay window) is not state.
    redis: (await h.redis.keys(`${h.config.REDIS_KEY_PREFIX}*`)).filter((k) => !k.endsWith('supervisor-events') && !k.endsWith('audit-refused') && !k.endsWith(':events')).sort(),
    ports: await h.redis.hgetall(h.keys.ports()),
    programs: (await h.driver.infoAll()).map((p) => p.name).sort(),
    accepted: status.metrics?.eventsReceived ?? null,
  };
}

/** A raw HTTP request: paths and bodies go out exactly as written (fetch would normalize them). */
function raw(base: string, method: string, path: string, headers: Record<string, string>, body?: string | Buffer) {
  const url = new URL(base);
  return new Promise<{ status: number; headers: Record<string, unknown>; text: string }>((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, method, path, headers, timeout: 15_000, agent: false }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`no answer within 15 s`)));
    req.end(body);
  });
}

const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
const hs = (alg: string, secret: string, payload: object, header: object = { alg, typ: 'JWT' }) => {
  const unsigned = `${b64(header)}.${b64(payload)}`;
  const hmac = alg === 'HS512' ? 'sha512' : 'sha256';
  return `${unsigned}.${createHmac(hmac, secret).update(unsigned).digest('base64url')}`;
};

const BAD_NAMES = [
  'Shop', 'SHOP', 'shop-1', 'shop.1', 'shop%201', '_shop', '-shop', 'sh%2Fop', '%2e%2e', '..', 'shop%00', '%FF', '%C3%A9t%C3%A9',
  'a'.repeat(49), 'a'.repeat(101), 'a'.repeat(300), 'token', 'x%20y', '%0aset', 'shop;rm', '$(id)', '`id`', 'shop%27', '%22',
  '%E2%80%8B', '%', '%2', 'a%', 'A1',
];

describe('bad input, generated', () => {
  it('answers every bad request to the control API with a 4xx error body, and changes nothing', async () => {
    const admin = h.tokenFor('admin');
    const auth = { authorization: `Bearer ${admin}`, 'content-type': 'application/json' };
    const cases: Array<{ method: string; path: string; headers?: Record<string, string>; body?: string }> = [];

    // Names, on every route that takes them.
    for (const bad of BAD_NAMES) {
      for (const [db, table] of [[bad, 'orders'], ['shop', bad === 'token' ? 'Token' : bad]]) {
        for (const [method, suffix] of [
          ['POST', 'create'], ['POST', 'start'], ['POST', 'stop'], ['POST', 'restart'], ['GET', 'status'], ['GET', 'incidents'], ['DELETE', ''],
          ['GET', 'config'], ['PATCH', 'config'], ['GET', 'config/revisions'], ['POST', 'config/rollback'], ['POST', 'pause'], ['POST', 'resume'],
          ['GET', 'logs'], ['GET', 'history'], ['POST', 'incidents/00000000-0000-4000-8000-000000000000/ack'],
        ]) {
          cases.push({ method: method!, path: `/v1/api/${db}/${table}${suffix ? `/${suffix}` : ''}` });
        }
      }
      cases.push({ method: 'DELETE', path: `/v1/api/token/${bad}x${'%'}` });
    }
    // Create bodies.
    const bodies = [
      'null', '[]', '5', '"file_roll"', 'true', '{', '{"sink":', '{"sink":"nope"}', '{"sink":null}', '{"sink":["kafka"]}',
      '{"options":[]}', '{"options":null}', '{"options":{"rollInterval":-1}}', '{"options":{"rollInterval":"30"}}',
      '{"options":{"rollInterval":1e308}}', '{"options":{"batchSize":0}}', '{"options":{"color":"red"}}', '{"color":"red"}',
      '{"channel":{"capacity":0}}', '{"channel":{"capacity":1.5}}', '{"channel":[]}', '{"channel":{"transactionCapacity":10,"capacity":5}}',
      '{"options":{"batchSize":20000}}', '{"sink":"kafka"}', '{"sink":"kafka","options":{"bootstrapServers":"k:9092","topic":"t\\nx.type=exec"}}',
      '{"sink":"kafka","options":{"bootstrapServers":"k:9092","acks":"2"}}', '{"sink":"kafka","options":{"bootstrapServers":"not a host"}}',
      '{"sink":"hdfs"}', '{"sink":"hdfs","options":{"nameNode":"file:///etc"}}', '{"sink":"hdfs","options":{"nameNode":"hdfs://nn:8020","path":"rel"}}',
      '{"sink":"logger","options":{"maxBytesToLog":0}}', '{"__proto__":{"sink":"kafka"}}', '{"constructor":{"prototype":{}}}',
      '{"sink":"file_roll","options":{"rollInterval":30,"rollInterval":"x"}}', '\u0000', '{"sink":"file_roll\\u0000"}', '[{"sink":"logger"}]',
    ];
    // JVM settings: every family that reads or writes a file, runs a program, unlocks flags,
    // loads code or takes memory, values out of bounds, and shapes that are not options at all.
    const jvmRefused = [
      '-XX:VMOptionsFile=../../var/jwt-secret', '-XX:Flags=/etc/passwd', '-XX:OnOutOfMemoryError=/usr/bin/id', '-XX:OnError=/usr/bin/id',
      '-XX:ErrorFile=/tmp/e', '-XX:HeapDumpPath=/tmp/h', '-XX:+HeapDumpOnOutOfMemoryError', '-XX:ArchiveClassesAtExit=/tmp/a', '-XX:SharedArchiveFile=/tmp/a',
      '-XX:+IgnoreUnrecognizedVMOptions', '-XX:+UnlockDiagnosticVMOptions', '-XX:+UnlockExperimentalVMOptions', '-XX:CompileCommandFile=/etc/passwd',
      '-XX:CompileCommand=quiet', '-XX:LogFile=/tmp/l', '-XX:+LogVMOutput', '-XX:+AlwaysPreTouch', '-XX:+PrintFlagsFinal', '-XX:StartFlightRecording=filename=/tmp/x',
      '-XX:FlightRecorderOptions=repository=/tmp', '-XX:+UseZGC', '-XX:+UseShenandoahGC', '-XX:+UseEpsilonGC', '-XX:+UseSerialGC=1', '-XX:UseSerialGC',
      '-XX:TieredStopAtLevel=9', '-XX:TieredStopAtLevel=x', '-XX:+TieredStopAtLevel', '-XX:ReservedCodeCacheSize=8g', '-XX:MaxMetaspaceSize=64g', '-XX:MaxDirectMemorySize=64g',
      '-XX:ActiveProcessorCount=1000000', '-XX:ParallelGCThreads=0', '-Xms64g', '-Xmn64g', '-Xss1g', '-Xss1', '-Xmx1g', '-Xms', '-Xmsbig', '-Xshare:off', '-Xlog:gc:file=/tmp/gc',
      '-Xbootclasspath/a:/tmp', '-Xverify:none', '-Djava.security.manager=allow', '-Dflume.monitoring.port=1', '-javaagent:/tmp/a.jar', '-agentlib:jdwp=transport=dt_socket',
      '-agentpath:/tmp/a.so', '-cp', '/tmp', '@/etc/passwd', '--add-opens=java.base/java.lang=ALL-UNNAMED', '-jar', '', ' ', '-XX:+UseSerialGC -XX:+UseG1GC',
      '-XX:+UseSerialGC\n-XX:OnError=id', '-XX:MaxGCPauseMillis=1e9', '-XX:+' + 'A'.repeat(80),
    ];
    for (const o of jvmRefused) bodies.push(JSON.stringify({ sink: 'logger', jvm: { options: [o] } }));
    for (const jvm of [{ heap: '64g' }, { heap: '0m' }, { heap: '256' }, { heap: '1t' }, { options: ['-XX:+UseSerialGC', '-XX:+UseG1GC'] }, { options: ['-Xms512m'] }, { heap: '64m', options: ['-Xmn64m'] }, { options: Array(41).fill('-XX:+UseSerialGC') }, { options: '-XX:+UseSerialGC' }, { flags: [] }]) {
      bodies.push(JSON.stringify({ sink: 'logger', jvm }));
    }
    // ${...} (Flume's own lookups) in every string option.
    for (const lookup of ['${env:JWT_SECRET}', '${sys:user.home}', '${FOO}', '$' + '{x']) {
      bodies.push(JSON.stringify({ sink: 'hdfs', options: { nameNode: 'hdfs://nn:8020', path: `/x/${lookup}` } }));
      bodies.push(JSON.stringify({ sink: 'hdfs', options: { nameNode: `hdfs://${lookup}:8020` } }));
      bodies.push(JSON.stringify({ sink: 'hdfs', options: { nameNode: 'hdfs://nn:8020', filePrefix: lookup } }));
      bodies.push(JSON.stringify({ sink: 'hdfs', options: { nameNode: 'hdfs://nn:8020', fileSuffix: lookup } }));
      bodies.push(JSON.stringify({ sink: 'kafka', options: { bootstrapServers: `${lookup}:9092` } }));
      bodies.push(JSON.stringify({ sink: 'kafka', options: { bootstrapServers: 'k:9092', topic: lookup } }));
    }
    for (const body of bodies) cases.push({ method: 'POST', path: '/v1/api/shop/orders/create', body });
    // Config changes (dry run or not: each is refused before anything is written).
    for (const q of ['', '?dryRun=true']) {
      for (const body of bodies) cases.push({ method: 'PUT', path: `/v1/api/good/events/config${q}`, body });
      for (const body of ['null', '[]', '5', '{"options":[]}', '{"options":{"maxBytesToLog":0}}', '{"options":{"color":1}}', '{"channel":{"capacity":0}}', '{"channel":{"transactionCapacity":2000000}}', '{"sink":"kafka"}', '{"sink":"jdbc"}', '{"color":1}']) {
        cases.push({ method: 'PATCH', path: `/v1/api/good/events/config${q}`, body });
      }
    }
    for (const q of ['dryRun=maybe', 'dryRun=', 'x=1']) cases.push({ method: 'PATCH', path: `/v1/api/good/events/config?${q}`, body: '{}' });
    for (const body of ['null', '[]', '{"revision":0}', '{"revision":-1}', '{"revision":1.5}', '{"revision":"1"}', '{"revision":99}', '{"rev":1}']) {
      cases.push({ method: 'POST', path: '/v1/api/good/events/config/rollback', body });
    }
    // Bulk selectors and operation ids.
    for (const body of [
      'null', '[]', '{}', '{"concurrency":4}', '{"db":"BAD"}', '{"db":"good","concurrency":0}', '{"db":"good","concurrency":65}', '{"db":"good","concurrency":"8"}',
      '{"tables":[]}', '{"tables":["good"]}', '{"tables":["good.events.x"]}', '{"tables":"good.events"}', '{"health":["sick"]}', '{"health":[]}', '{"state":["running"]}',
      '{"all":false}', '{"all":"yes"}', '{"db":"good","color":"red"}',
    ]) {
      for (const op of ['stop', 'delete']) cases.push({ method: 'POST', path: `/v1/api/bulk/${op}`, body });
    }
    for (const path of ['/v1/api/bulk/explode', '/v1/api/bulk/']) cases.push({ method: 'POST', path, body: '{"all":true}' });
    for (const id of ['nope', '1', '%00', 'a'.repeat(200), '00000000-0000-4000-8000-000000000000']) cases.push({ method: 'GET', path: `/v1/api/operations/${id}` });
    for (const q of ['limit=0', 'limit=501', 'limit=x', 'x=1']) cases.push({ method: 'GET', path: `/v1/api/incidents?${q}` });
    for (const q of ['lines=0', 'lines=1001', 'lines=-1', 'lines=x', 'follow=maybe', 'follow=', 'x=1']) cases.push({ method: 'GET', path: `/v1/api/good/events/logs?${q}` });
    for (const id of ['nope', '1', 'a'.repeat(100), '00000000-0000-4000-8000-000000000000']) cases.push({ method: 'POST', path: `/v1/api/good/events/incidents/${id}/ack` });
    for (const body of ['{"idleMinutes":0}', '{"idleMinutes":-1}', '{"idleMinutes":"5"}', '{"idleMinutes":100000}']) {
      cases.push({ method: 'POST', path: '/v1/api/shop/orders/create', body });
      cases.push({ method: 'PATCH', path: '/v1/api/good/events/config', body });
    }
    for (const q of ['limit=0', 'limit=1001', 'limit=x', 'outcome=maybe', 'db=BAD', 'table=a-b', 'color=1', `who=${'a'.repeat(129)}`]) cases.push({ method: 'GET', path: `/v1/api/audit?${q}` });
    for (const q of ['limit=0', 'limit=1001', 'limit=x', 'limit=-1', 'db=good', 'x=1']) cases.push({ method: 'GET', path: `/v1/api/audit/refused?${q}` });
    // Hosts that are not this API's (DNS rebinding).
    for (const host of ['attacker.example', 'attacker.example:8001', '127.0.0.1.nip.io', 'localhost.attacker.example', '[::2]', '10.0.0.1']) {
      cases.push({ method: 'GET', path: '/v1/api/services', headers: { ...auth, host } });
    }
    // Ingestion-token bodies.
    const tokenBodies = [
      'null', '[]', '"alice"', '{}', '{"username":""}', '{"username":"a b"}', '{"username":"' + 'a'.repeat(65) + '"}', '{"username":5}',
      '{"username":"a","token":"short"}', '{"username":"a","token":"' + 'x'.repeat(31) + '"}', '{"username":"a","token":"' + 'x y'.repeat(20) + '"}',
      '{"username":"a","ttlSeconds":0}', '{"username":"a","ttlSeconds":-5}', '{"username":"a","ttlSeconds":"60"}', '{"username":"a","scope":[]}',
      '{"username":"a","scope":"*"}', '{"username":"a","scope":["Bad"]}', '{"username":"a","scope":["a.b.c"]}', '{"username":"a","color":1}', 'username=a',
    ];
    for (const body of tokenBodies) cases.push({ method: 'POST', path: '/v1/api/token', body });
    // Queries.
    for (const q of ['state=nope', 'state=', 'db=BAD', 'db=a-b', 'x=1', 'state=running&state=stopped', 'db[]=a', 'state=%FF']) cases.push({ method: 'GET', path: `/v1/api/services?${q}` });
    for (const q of ['fresh=maybe', 'fresh=', 'x=1', 'fresh=true&fresh=false']) cases.push({ method: 'GET', path: `/v1/api/good/events/status?${q}` });
    for (const q of ['force=yes', 'force=', 'x=1']) cases.push({ method: 'DELETE', path: `/v1/api/good/events?${q}` });
    for (const q of ['start=maybe', 'start=', 'start=0&start=1', 'begin=false']) cases.push({ method: 'POST', path: `/v1/api/shop/orders/create?${q}` });
    // Quotas: names, bodies, ids.
    for (const bad of BAD_NAMES) {
      for (const method of ['GET', 'PUT', 'DELETE']) cases.push({ method, path: `/v1/api/quotas/${bad}`, body: method === 'PUT' ? '{"eventsPerSecond":5}' : undefined });
    }
    for (const body of [
      'null', '[]', '5', '"5"', '{}', '{', '{"eventsPerSecond":0}', '{"eventsPerSecond":-1}', '{"eventsPerSecond":1.5}', '{"eventsPerSecond":"5"}',
      '{"eventsPerSecond":null}', '{"eventsPerSecond":true}', '{"eventsPerSecond":1e999}', '{"eventsPerSecond":1e13}', '{"bytesPerDay":[5]}',
      '{"eventsPerMinute":5}', '{"eventsPerSecond":5,"color":1}', '{"__proto__":{"eventsPerSecond":5}}', '{"constructor":{"prototype":{"x":1}}}',
    ]) {
      cases.push({ method: 'PUT', path: '/v1/api/quotas/good', body });
    }
    for (const q of ['x=1', 'db=BAD']) cases.push({ method: 'GET', path: `/v1/api/quotas?${q}` });
    // Event contracts: shapes, keywords outside the subset, bounds nothing meets, and sizes (deep
    // nesting by the thousand included: refused, never a stack overflow).
    const deep = (levels: number) => `${'{"items":'.repeat(levels)}{}${'}'.repeat(levels)}`;
    const schemas = [
      'null', '[]', '5', '"reject"', '{}', '{"policy":"reject"}', '{"policy":"drop","body":{}}', '{"policy":"quarantine","body":{}}', '{"body":null}', '{"body":[]}',
      '{"body":{"pattern":"^(a+)+$"}}', '{"body":{"oneOf":[{}]}}', '{"body":{"$ref":"#"}}', '{"body":{"format":"email"}}', '{"body":{"if":{}}}',
      '{"body":{"type":"strung"}}', '{"body":{"type":[]}}', '{"body":{"type":5}}', '{"body":{"minimum":"1"}}', '{"body":{"minimum":5,"maximum":1}}',
      '{"body":{"minLength":-1}}', '{"body":{"minLength":1.5}}', '{"body":{"minItems":3,"maxItems":2}}', '{"body":{"required":"a"}}', '{"body":{"required":[5]}}',
      '{"body":{"properties":{"":{}}}}', '{"body":{"properties":{"a\\u0000b":{}}}}', '{"body":{"properties":[]}}', '{"body":{"properties":{"a":5}}}',
      '{"body":{"additionalProperties":{}}}', '{"body":{"enum":[]}}', '{"body":{"enum":[{}]}}', '{"body":{"enum":[null]}}', '{"body":{"const":{}}}', '{"body":{"items":[{}]}}',
      '{"body":{"properties":{"a":{"minimum":2,"maximum":1}}}}', '{"headers":{"type":"object"},"body":{"x-extra":1}}', '{"body":{},"extra":1}',
      `{"body":${deep(11)}}`, `{"body":${deep(3000)}}`, `{"body":${deep(60_000)}}`, `{"body":{"description":"${'d'.repeat(17_000)}"}}`,
      `{"body":{"properties":{${Array.from({ length: 401 }, (_, i) => `"p${i}":{}`).join(',')}}}}`,
    ];
    for (const schema of schemas) {
      cases.push({ method: 'POST', path: '/v1/api/shop/orders/create', body: `{"sink":"logger","schema":${schema}}` });
      // (A merge patch's null removes the contract: not a bad request.)
      if (schema !== 'null') cases.push({ method: 'PATCH', path: '/v1/api/good/events/config', body: `{"schema":${schema}}` });
    }
    // Unknown routes and wrong methods.
    for (const [method, path] of [['GET', '/v1/api'], ['GET', '/v1/api/shop'], ['POST', '/v1/api/shop/orders/explode'], ['GET', '/v1/api/good/events/create'], ['PUT', '/v1/api/good/events/stop'], ['POST', '/v1/api/good/events/status'], ['GET', '/nope'], ['PATCH', '/v1/api/token']]) {
      cases.push({ method: method!, path: path! });
    }
    // Control tokens.
    const now = Math.floor(Date.now() / 1000);
    const secret = 'x'.repeat(48);
    const jwts = [
      '', 'Bearer', 'Bearer ', 'Basic YWRtaW46YWRtaW4=', `Bearer ${admin} extra`, `bearer${admin}`, `Bearer ${admin.slice(0, -2)}`,
      `Bearer ${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'eve', role: 'admin', jti: 'jti-none-1', exp: now + 600 })}.`,
      `Bearer ${b64({ alg: 'none' })}.${b64({ sub: 'eve', role: 'admin', jti: 'jti-none-2', exp: now + 600 })}`,
      `Bearer ${hs('HS256', secret, { sub: 'eve', role: 'admin', jti: 'jti-forged', exp: now + 600 })}`,
      `Bearer ${hs('HS512', secret, { sub: 'eve', role: 'admin', jti: 'jti-hs512', exp: now + 600 })}`,
      `Bearer ${h.app.jwt.sign({ sub: 'x', role: 'admin', jti: 'jti-expired', exp: now - 5 })}`,
      `Bearer ${h.app.jwt.sign({ sub: 'x', role: 'admin', jti: 'jti-noexp' })}`,
      `Bearer ${h.app.jwt.sign({ sub: 'x', role: 'admin' }, { expiresIn: '1h' })}`,
      `Bearer ${h.app.jwt.sign({ sub: 'x', role: 'root', jti: 'jti-root' }, { expiresIn: '1h' })}`,
      `Bearer ${h.app.jwt.sign({ sub: '', role: 'admin', jti: 'jti-nosub' }, { expiresIn: '1h' })}`,
      `Bearer ${h.app.jwt.sign({ sub: 'x', role: 'admin', jti: 'jti-dbs', dbs: 'shop' }, { expiresIn: '1h' })}`,
      `Bearer ${h.app.jwt.sign({ sub: 'x', role: 'admin', jti: 'jti-dbs2', dbs: ['Bad-Db'] }, { expiresIn: '1h' })}`,
      `Bearer ${h.app.jwt.sign({ sub: 'x', role: 'admin', jti: 'short' }, { expiresIn: '1h' })}`,
      `Bearer ${h.app.jwt.sign({ sub: 'x', role: 'admin', jti: 'jti-nbf', nbf: now + 3600 }, { expiresIn: '2h' })}`,
      `Bearer ${'a'.repeat(9000)}`,
    ];
    for (const authorization of jwts) {
      for (const [method, path] of [['POST', '/v1/api/shop/orders/create'], ['GET', '/v1/api/services'], ['POST', '/v1/api/token'], ['POST', '/v1/api/reconcile']]) {
        const headers: Record<string, string> = method === 'POST' ? { 'content-type': 'application/json' } : {};
        if (authorization) headers.authorization = authorization;
        cases.push({ method: method!, path: path!, headers, body: method === 'POST' ? '{}' : undefined });
      }
    }

    const before = await snapshot();
    const wrong: string[] = [];
    for (const c of cases) {
      const r = await raw(api, c.method, c.path, c.headers ?? auth, c.body).catch((e: Error) => ({ status: 0, headers: {}, text: e.message }));
      let body: { code?: unknown; error?: unknown; message?: unknown } = {};
      try {
        body = JSON.parse(r.text) as typeof body;
      } catch {
        // not JSON: reported below
      }
      const shaped = typeof body.code === 'number' && body.code > 0 && typeof body.error === 'string' && typeof body.message === 'string';
      if (r.status < 400 || r.status >= 500 || !shaped) wrong.push(`${c.method} ${c.path.slice(0, 80)} ${c.body?.slice(0, 60) ?? ''} -> ${r.status} ${r.text.slice(0, 120)}`);
    }
    // Not HTTP at all, and headers over Node's limit: still the error body.
    const { connect } = await import('node:net');
    for (const bytes of ['GARBAGE\r\n\r\n', `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 'GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n']) {
      const text = await new Promise<string>((resolve) => {
        let out = '';
        const sock = connect(Number(new URL(api).port), '127.0.0.1', () => sock.end(bytes));
        sock.on('data', (d: Buffer) => (out += d.toString()));
        sock.on('close', () => resolve(out));
        sock.on('error', () => resolve(out));
      });
      const [head = '', body = ''] = text.split('\r\n\r\n');
      if (!/^HTTP\/1\.1 4\d\d /.test(head) || !/"error":"(INVALID_REQUEST|HEADERS_TOO_LARGE)"/.test(body)) wrong.push(`raw ${bytes.slice(0, 30)} -> ${text.slice(0, 120)}`);
      cases.push({ method: 'RAW', path: bytes.slice(0, 20) });
    }
    console.log(`control API: ${cases.length} bad requests, ${cases.length - wrong.length} answered 4xx with the error body`);
    expect(wrong).toEqual([]);
    expect(await snapshot()).toEqual(before);
  });

  it('answers every bad ingest request at the gateway with a 4xx error body, and delivers nothing', async () => {
    const cases: Array<{ method: string; path: string; headers: Record<string, string>; body?: string | Buffer }> = [];
    const good = { authorization: `Bearer ${ingestToken}`, 'content-type': 'application/json' };
    const bodies: Array<string | Buffer> = [
      '', 'null', '{}', '"x"', '5', 'true', '[1]', '[null]', '["x"]', '[[]]', '[{"headers":[]}]', '[{"headers":"x"}]', '[{"headers":{"a":1}}]',
      '[{"headers":{"a":null}}]', '[{"headers":{"a":{"b":"c"}}}]', '[{"headers":{"topic":"other"}}]', '[{"headers":{"key":"k"}}]',
      '[{"body":"ok"},{"headers":{"topic":"x"}}]', '[{"body":"ok"}, 7]', '{', '[{"body":"x"', '['.repeat(5000) + ']'.repeat(5000),
      Buffer.from([0xff, 0xfe, 0x00]), 'x'.repeat(2_000_000),
      // More events than one transaction holds (the table's transactionCapacity, 10,000 here).
      '[' + Array(10_001).fill('{}').join(',') + ']', '[' + Array(300_000).fill('{}').join(',') + ']', JSON.stringify(Array(10_001).fill({ body: 'x' })),
      // Not JSON numbers, and header names no sink can take.
      '[{"body":"x","n":NaN}]', '[{"body":"x","n":Infinity}]', '[{"body":"x","n":-Infinity}]', '[{"body":"x","n":0x1F}]', '[{"headers":{"a\\u0000":"v"}}]',
      '[{"headers":{"\\u0007bell":"v"}}]', '[{"headers":{"a\\nb":"v"}}]', '[{"headers":{"":"v"}}]', JSON.stringify([{ headers: { ['h'.repeat(300)]: 'v' } }]),
    ];
    for (const body of bodies) cases.push({ method: 'POST', path: '/ingest/good/events', headers: good, body });
    const auths: Array<Record<string, string>> = [
      {}, { authorization: '' }, { authorization: 'Bearer' }, { authorization: 'Basic abc' }, { authorization: `Bearer ${ingestToken} x` },
      { authorization: 'Bearer wrong-token-wrong-token-wrong-token' }, { authorization: `Bearer ${'t'.repeat(8000)}` },
      { authorization: `Bearer ${ingestToken.toUpperCase()}` },
    ];
    for (const a of auths) cases.push({ method: 'POST', path: '/ingest/good/events', headers: { 'content-type': 'application/json', ...a }, body: '[{"body":"x"}]' });
    for (const path of ['/ingest/good', '/ingest/good/events/more', '/ingest/Good/events', '/ingest/good/ev-ents', `/ingest/${'a'.repeat(60)}/events`, '/ingest/good/other', '/ingest/other/events', '/', '/ingest', '/ingest/%FF/x']) {
      cases.push({ method: 'POST', path, headers: good, body: '[{"body":"x"}]' });
    }
    for (const method of ['GET', 'PUT', 'DELETE', 'PATCH']) cases.push({ method, path: '/ingest/good/events', headers: good, body: '[{"body":"x"}]' });

    const before = await snapshot();
    const wrong: string[] = [];
    for (const c of cases) {
      const r = await raw(gw.url, c.method, c.path, c.headers, c.body).catch((e: Error) => ({ status: 0, headers: {}, text: e.message }));
      let body: { code?: unknown; error?: unknown; message?: unknown } = {};
      try {
        body = JSON.parse(r.text) as typeof body;
      } catch {
        // not JSON: reported below
      }
      const shaped = typeof body.code === 'number' && body.code > 0 && typeof body.error === 'string' && typeof body.message === 'string';
      if (r.status < 400 || r.status >= 500 || !shaped) wrong.push(`${c.method} ${c.path.slice(0, 60)} ${String(c.body).slice(0, 50)} -> ${r.status} ${r.text.slice(0, 120)}`);
    }
    console.log(`gateway: ${cases.length} bad requests, ${cases.length - wrong.length} answered 4xx with the error body`);
    expect(wrong).toEqual([]);
    const after = await snapshot();
    expect(after.accepted).toBe(before.accepted);
    expect(after).toEqual(before);
  });
});
