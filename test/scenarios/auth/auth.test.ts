import { createHmac } from 'node:crypto';
import { existsSync, statSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOrCreateTokenHashKey, secretFile } from '../../../src/auth/secret.js';
import { hashToken as keyedHash } from '../../../src/tokens/hash.js';
import { startHarness, type Harness } from '../../helpers/harness.js';
import { portRange } from '../../helpers/ports.js';
import { until } from '../../helpers/wait.js';

const hashToken = (token: string) => keyedHash(token, loadOrCreateTokenHashKey(h.config));

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ PORT_RANGE: await portRange() });
});
afterAll(async () => {
  await h?.close();
});

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
const as = (token: string | null, method: Method, url: string, payload?: object) =>
  h.app.inject({
    method,
    url,
    headers: token === null ? {} : { authorization: `Bearer ${token}` },
    ...(payload ? { payload } : {}),
  });

// Every control route, what it needs, and the answer it gives once authorized (the calls are
// chosen to change nothing: unknown tables, bad bodies).
const ROUTES: Array<[method: Method, url: string, need: 'read' | 'operate' | 'admin', authorized: number, payload?: object]> = [
  // First: the agent's own URL would also match /v1/api/<word>/<word> routes listed below.
  ['GET', '/v1/api/shop/orders', 'read', 404],
  ['PUT', '/v1/api/shop/orders', 'operate', 400, { sink: 'nope' }],
  ['POST', '/v1/api/shop/orders/create', 'operate', 400, { sink: 'nope' }],
  ['POST', '/v1/api/shop/orders/start', 'operate', 404],
  ['POST', '/v1/api/shop/orders/stop', 'operate', 404],
  ['POST', '/v1/api/shop/orders/restart', 'operate', 404],
  ['GET', '/v1/api/shop/orders/status', 'read', 404],
  ['DELETE', '/v1/api/shop/orders', 'operate', 404],
  ['GET', '/v1/api/services', 'read', 200],
  ['GET', '/v1/api/shop/orders/incidents', 'read', 404],
  ['POST', '/v1/api/reconcile', 'admin', 200],
  ['POST', '/v1/api/token', 'admin', 400, {}],
  ['GET', '/v1/api/token', 'admin', 200],
  ['DELETE', '/v1/api/token/nobody', 'admin', 404],
  ['POST', '/v1/api/control-tokens/revoke', 'admin', 400, {}],
  ['GET', '/v1/api/sinks', 'read', 200],
  ['POST', '/v1/api/shop/orders/create?start=maybe', 'operate', 400],
  ['GET', '/v1/api/shop/orders/config', 'read', 404],
  ['PUT', '/v1/api/shop/orders/config', 'operate', 404, {}],
  ['PATCH', '/v1/api/shop/orders/config?dryRun=true', 'operate', 404, {}],
  ['GET', '/v1/api/shop/orders/config/revisions', 'read', 404],
  ['POST', '/v1/api/shop/orders/config/rollback', 'operate', 404, {}],
  ['GET', '/v1/api/shop/orders/quarantine', 'operate', 404],
  ['POST', '/v1/api/shop/orders/quarantine/replay', 'operate', 404, {}],
  ['DELETE', '/v1/api/shop/orders/quarantine', 'operate', 404],
  ['GET', '/v1/api/shop/orders/trace/req-1', 'read', 404],
  ['POST', '/v1/api/shop/orders/pause', 'operate', 404],
  ['POST', '/v1/api/shop/orders/resume', 'operate', 404],
  ['POST', '/v1/api/bulk/stop', 'operate', 400, {}],
  ['POST', '/v1/api/bulk/delete', 'operate', 400, { db: 'shop', concurrency: 0 }],
  ['POST', '/v1/api/bulk/start', 'operate', 400, {}],
  ['POST', '/v1/api/bulk/restart', 'operate', 400, {}],
  ['POST', '/v1/api/bulk/pause', 'operate', 400, {}],
  ['POST', '/v1/api/bulk/resume', 'operate', 400, {}],
  ['GET', '/v1/api/audit/refused', 'admin', 200],
  // A stream that stays open once authorized (0): only its refusals are called here.
  ['GET', '/v1/api/events', 'read', 0],
  ['GET', '/v1/api/operations/00000000-0000-4000-8000-000000000000', 'read', 404],
  ['GET', '/v1/api/operations', 'read', 200],
  ['GET', '/v1/api/fleet?db=NOT-A-DB', 'read', 400],
  ['GET', '/v1/api/shop/orders/loggers', 'read', 404],
  ['POST', '/v1/api/shop/orders/adopt', 'admin', 400, {}],
  ['PUT', '/v1/api/shop/orders/loggers/root', 'operate', 404, { level: 'INFO' }],
  ['DELETE', '/v1/api/shop/orders/loggers/root', 'operate', 404],
  ['PUT', '/v1/api/fleet?dryRun=true', 'operate', 400, { tables: { 'not a table': {} } }],
  ['POST', '/v1/api/operations/00000000-0000-4000-8000-000000000000/cancel', 'operate', 404],
  ['GET', '/v1/api/quotas', 'read', 200],
  ['GET', '/v1/api/quotas/shop', 'read', 200],
  ['PUT', '/v1/api/quotas/shop', 'admin', 400, {}],
  ['DELETE', '/v1/api/quotas/NOT-A-DB', 'admin', 400],

  ['GET', '/v1/api/audit', 'admin', 200],
  ['GET', '/v1/api/shop/orders/logs', 'operate', 404],
  ['GET', '/v1/api/shop/orders/history', 'read', 404],
  ['GET', '/v1/api/summary', 'read', 200],
  ['GET', '/v1/api/incidents', 'read', 200],
  ['POST', '/v1/api/shop/orders/incidents/00000000-0000-4000-8000-000000000000/ack', 'operate', 404],
  ['GET', '/v1/api/nodes', 'read', 200],
  // A single host: the change itself is refused (409 NOT_CLUSTERED) once authorized.
  ['PUT', '/v1/api/nodes/somehost/state', 'admin', 409, { state: 'draining' }],
  ['POST', '/v1/api/nodes/somehost/drain', 'admin', 409, {}],
  ['GET', '/v1/api/nodes/somehost/incidents', 'read', 200],
  ['POST', '/v1/api/nodes/somehost/incidents/0000000000-00000000/ack', 'operate', 404],
  ['POST', '/v1/api/shop/orders/move', 'operate', 409, {}],
];
const GRANTS = { admin: ['read', 'operate', 'admin'], operator: ['read', 'operate'], viewer: ['read'] } as const;

describe('control API authorization', () => {
  it('answers 401 without a valid token on every route', async () => {
    // A well-formed HS256 token signed with some other secret.
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const unsigned = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: 'eve', role: 'admin', iat: Math.floor(Date.now() / 1000) })}`;
    const forged = `${unsigned}.${createHmac('sha256', 'x'.repeat(40)).update(unsigned).digest('base64url')}`;
    const expired = h.app.jwt.sign({ sub: 'x', role: 'admin', exp: Math.floor(Date.now() / 1000) - 60 });
    const noRole = h.app.jwt.sign({ sub: 'x', role: 'root', jti: 'jti-no-role' }, { expiresIn: '1h' });
    // Every control token must expire and be revocable alone: no exp, or no jti, is refused.
    const noExp = h.app.jwt.sign({ sub: 'x', role: 'admin', jti: 'jti-no-exp' });
    const noJti = h.app.jwt.sign({ sub: 'x', role: 'admin' }, { expiresIn: '1h' });
    const algNone = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'eve', role: 'admin', jti: 'jti-none', exp: Math.floor(Date.now() / 1000) + 600 })}.`;
    for (const [method, url, , , payload] of ROUTES) {
      for (const token of [null, 'garbage', forged, expired, noRole, noExp, noJti, algNone]) {
        const r = await as(token, method, url, payload);
        expect(r.statusCode, `${method} ${url} with ${token?.slice(0, 10)}`).toBe(401);
        expect(r.json()).toMatchObject({ code: 10020, error: 'UNAUTHORIZED' });
      }
    }
    expect((await as(expired, 'GET', '/v1/api/services')).json().message).toBe('the token has expired');
  });

  it("covers every route the API declares, with the access the route declares (so a new route cannot be left out)", async () => {
    const doc = (await h.inject({ method: 'GET', url: '/docs/json' })).json() as { paths: Record<string, Record<string, { description?: string }>> };
    const declared: string[] = [];
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const need = /role grants "(\w+)"/.exec(op.description ?? '')?.[1];
        if (!need) continue; // open: /healthz, /readyz, pages
        // A documented path as a pattern the calls above can match: {db} -> one segment.
        const pattern = new RegExp(`^${path.replace(/\{[^}]+\}/g, '[^/?]+')}(\\?.*)?$`);
        const listed = ROUTES.find(([m, url]) => m === method.toUpperCase() && pattern.test(url));
        declared.push(`${method.toUpperCase()} ${path} ${need} -> ${listed ? listed[2] : 'missing'}`);
      }
    }
    expect(declared.length).toBeGreaterThan(25);
    expect(declared.filter((d) => !/ (\w+) -> \1$/.test(d))).toEqual([]);
  });

  it('lets each role do exactly what it may: 403 otherwise', async () => {
    for (const role of ['admin', 'operator', 'viewer'] as const) {
      const token = h.tokenFor(role);
      for (const [method, url, need, authorized, payload] of ROUTES) {
        if (authorized === 0 && (GRANTS[role] as readonly string[]).includes(need)) continue;
        const r = await as(token, method, url, payload);
        const allowed = (GRANTS[role] as readonly string[]).includes(need);
        expect(r.statusCode, `${role} ${method} ${url}`).toBe(allowed ? authorized : 403);
        if (!allowed) expect(r.json()).toMatchObject({ code: 10030, error: 'FORBIDDEN' });
      }
    }
  });

  it('limits a token to its dbs', async () => {
    const token = h.tokenFor('operator', ['crm']);
    expect((await as(token, 'GET', '/v1/api/shop/orders/status')).statusCode).toBe(403);
    expect((await as(token, 'POST', '/v1/api/shop/orders/stop')).statusCode).toBe(403);
    expect((await as(token, 'GET', '/v1/api/crm/leads/status')).statusCode).toBe(404);
    expect((await as(token, 'GET', '/v1/api/services?db=shop')).statusCode).toBe(403);
    expect((await as(token, 'GET', '/v1/api/services?db=crm')).statusCode).toBe(200);
    for (const [method, url] of [['GET', 'config'], ['PATCH', 'config'], ['POST', 'config/rollback'], ['POST', 'pause'], ['POST', 'resume'], ['GET', 'logs'], ['GET', 'history'], ['POST', 'incidents/00000000-0000-4000-8000-000000000000/ack']] as const) {
      expect((await as(token, method, `/v1/api/shop/orders/${url}`, method === 'GET' ? undefined : {})).statusCode, url).toBe(403);
    }
    expect((await as(token, 'POST', '/v1/api/bulk/stop', { db: 'shop' })).statusCode).toBe(403);
    expect((await as(token, 'POST', '/v1/api/bulk/stop', { tables: ['crm.leads', 'shop.orders'] })).statusCode).toBe(403);
    // A dbs-limited admin reads the audit of its dbs only.
    expect((await as(token, 'POST', '/v1/api/crm/leads/stop')).statusCode).toBe(404);
    // Entries are written once the answer is sent: wait for this one.
    const audit = await until(
      async () => (await as(h.tokenFor('admin', ['crm']), 'GET', '/v1/api/audit?limit=1000')).json().entries as Array<{ db: string | null }>,
      (e) => e.length > 0,
      5_000,
    );
    expect(audit.every((e) => e.db === 'crm')).toBe(true);
    const all = (await as(h.tokenFor('admin'), 'GET', '/v1/api/audit?limit=1000')).json().entries as Array<{ db: string | null }>;
    expect(all.some((e) => e.db === 'shop')).toBe(true);
  });

  it('keeps a dbs-limited admin within its dbs everywhere: ingestion tokens, reconcile, revocations', async () => {
    const crm = h.tokenFor('admin', ['crm']);
    expect((await as(crm, 'POST', '/v1/api/reconcile')).statusCode).toBe(403);
    expect((await as(crm, 'POST', '/v1/api/control-tokens/revoke', { jti: 'some-token-id' })).statusCode).toBe(403);
    // Minting: no scope means every db, so it needs one, within crm.
    for (const scope of [undefined, ['shop'], ['crm', 'shop.orders']]) {
      const r = await as(crm, 'POST', '/v1/api/token', { username: 'limited', ...(scope ? { scope } : {}) });
      expect(r.statusCode, JSON.stringify(scope)).toBe(403);
    }
    expect(await h.redis.exists(h.keys.user('limited'))).toBe(0);
    expect((await as(crm, 'POST', '/v1/api/token', { username: 'limited', scope: ['crm.leads'] })).statusCode).toBe(200);
    expect((await as(h.tokenFor('admin'), 'POST', '/v1/api/token', { username: 'wide' })).statusCode).toBe(200);
    const listed = (await as(crm, 'GET', '/v1/api/token')).json().users.map((u: { username: string }) => u.username);
    expect(listed).toContain('limited');
    expect(listed).not.toContain('wide');
    expect((await as(crm, 'DELETE', '/v1/api/token/wide')).statusCode).toBe(403);
    expect(await h.redis.exists(h.keys.user('wide'))).toBe(1);
    expect((await as(crm, 'DELETE', '/v1/api/token/limited')).statusCode).toBe(200);
    expect((await as(h.tokenFor('admin'), 'DELETE', '/v1/api/token/wide')).statusCode).toBe(200);
  });

  it('revokes one control token, by its jti or by the token itself; the others keep working', async () => {
    const keep = h.tokenFor('viewer');
    const byJti = h.tokenFor('viewer');
    const byToken = h.tokenFor('operator');
    for (const t of [keep, byJti, byToken]) expect((await as(t, 'GET', '/v1/api/services')).statusCode).toBe(200);
    const jti = (h.app.jwt.decode(byJti) as { jti: string }).jti;
    expect((await h.inject({ method: 'POST', url: '/v1/api/control-tokens/revoke', payload: { jti } })).json()).toMatchObject({ code: 0, jti });
    const r = await h.inject({ method: 'POST', url: '/v1/api/control-tokens/revoke', payload: { token: byToken } });
    expect(r.statusCode).toBe(200);
    expect(Date.parse(r.json().revokedUntil)).toBe((h.app.jwt.decode(byToken) as { exp: number }).exp * 1000);
    for (const t of [byJti, byToken]) {
      const denied = await as(t, 'GET', '/v1/api/services');
      expect(denied.statusCode).toBe(401);
      expect(denied.json().message).toBe('the token has been revoked');
    }
    expect((await as(keep, 'GET', '/v1/api/services')).statusCode).toBe(200);
    // Kept on disk (the truth, 0600) and in Redis (for other API processes).
    const file = `${h.config.varDir}/revoked-control-tokens.json`;
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(Object.keys(JSON.parse(readFileSync(file, 'utf8')))).toEqual(expect.arrayContaining([jti]));
    expect(await h.redis.hexists(h.keys.revokedControlTokens(), jti)).toBe(1);
    // Bad requests change nothing.
    for (const body of [{}, { jti: 'short' }, { jti: 'some-token-id', token: byToken }, { token: 'garbage' }, { jti: 'x'.repeat(9), color: 1 }]) {
      expect((await h.inject({ method: 'POST', url: '/v1/api/control-tokens/revoke', payload: body })).statusCode, JSON.stringify(body)).toBe(400);
    }
  });

  it('keeps /healthz, /readyz, /metrics and the pages open; the event stream is not', async () => {
    for (const url of ['/healthz', '/readyz', '/metrics', '/dashboard', '/docs', '/openapi.json']) {
      expect((await as(null, 'GET', url)).statusCode, url).toBe(200);
    }
    expect((await as(null, 'GET', '/v1/api/events')).statusCode).toBe(401);
    expect((await as(h.tokenFor('viewer', ['crm']), 'GET', '/v1/api/shop/orders/incidents')).statusCode).toBe(403);
  });

  it('generates the signing secret once, readable only by its owner', () => {
    const st = statSync(secretFile(h.config));
    expect(st.mode & 0o777).toBe(0o600);
    expect(readFileSync(secretFile(h.config), 'utf8').trim().length).toBeGreaterThanOrEqual(32);
  });
});

describe('ingestion token API', () => {
  const admin = () => h.tokenFor('admin');

  it('keeps the original request shape: 10001 for a body that is not JSON, 10002 for a missing field', async () => {
    const notJson = await h.app.inject({
      method: 'POST',
      url: '/v1/api/token',
      headers: { authorization: `Bearer ${admin()}`, 'content-type': 'application/json' },
      payload: 'username=alice',
    });
    expect(notJson.statusCode).toBe(400);
    expect(notJson.json()).toMatchObject({ code: 10001 });
    expect((await as(admin(), 'POST', '/v1/api/token', { token: 'x'.repeat(20) })).json()).toMatchObject({ code: 10002 });
    expect((await as(admin(), 'POST', '/v1/api/token', { username: 'a', token: 'short' })).json()).toMatchObject({ code: 10011 });
    expect((await as(admin(), 'POST', '/v1/api/token', { username: 'a', scope: ['Bad-Db'] })).statusCode).toBe(400);
    expect((await as(admin(), 'POST', '/v1/api/token', { username: 'a', color: 'red' })).json().message).toContain('color');
  });

  it('generates a token when none is given, shows it once and stores only its hash', async () => {
    const r = await as(admin(), 'POST', '/v1/api/token', { username: 'alice', ttlSeconds: 3600, scope: ['shop', 'crm.leads'] });
    expect(r.statusCode).toBe(200);
    const body = r.json() as { token: string; expiresAt: string; scope: string[] };
    expect(body.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(body.scope).toEqual(['shop', 'crm.leads']);
    expect(Date.parse(body.expiresAt) - Date.now()).toBeGreaterThan(3500_000);

    const given = await as(admin(), 'POST', '/v1/api/token', { username: 'bob', token: 'bob-secret-token-0001-at-least-32-chars' });
    expect(given.json()).not.toHaveProperty('token');

    // Nothing in Redis holds either token in plain text.
    const keys = await h.redis.keys(`${h.config.REDIS_KEY_PREFIX}*`);
    const dump = JSON.stringify(
      await Promise.all(keys.map(async (k) => [k, (await h.redis.type(k)) === 'hash' ? await h.redis.hgetall(k) : await h.redis.smembers(k).catch(() => null)])),
    );
    expect(dump).not.toContain(body.token);
    expect(dump).not.toContain('bob-secret-token-0001');
    expect(dump).toContain(hashToken(body.token));
    // The disk copy (to survive a Redis loss) holds hashes only, readable by the owner only.
    const copy = `${h.config.varDir}/tokens/alice.json`;
    expect(readFileSync(copy, 'utf8')).toContain(hashToken(body.token));
    expect(readFileSync(copy, 'utf8')).not.toContain(body.token);
    expect(statSync(copy).mode & 0o777).toBe(0o600);

    const list = (await as(admin(), 'GET', '/v1/api/token')).json() as { users: Array<Record<string, unknown>> };
    expect(list.users.map((u) => u.username)).toEqual(['alice', 'bob']);
    expect(list.users[0]).toMatchObject({ scope: ['shop', 'crm.leads'], lastUsedAt: null, previousValidUntil: null });
    expect(JSON.stringify(list)).not.toContain(body.token);
    expect(JSON.stringify(list)).not.toContain(hashToken(body.token));
  });

  it('rotates with a grace period and revokes everything at once', async () => {
    const first = (await as(admin(), 'POST', '/v1/api/token', { username: 'carol' })).json() as { token: string };
    const second = (await as(admin(), 'POST', '/v1/api/token', { username: 'carol' })).json() as { token: string; previousValidUntil: string };
    expect(Date.parse(second.previousValidUntil) - Date.now()).toBeGreaterThan((h.config.TOKEN_GRACE_SECONDS - 5) * 1000);
    expect(await h.redis.exists(h.keys.token(hashToken(first.token)))).toBe(1);
    const third = (await as(admin(), 'POST', '/v1/api/token', { username: 'carol' })).json() as { token: string };
    expect(await h.redis.exists(h.keys.token(hashToken(first.token)))).toBe(0); // only one previous token lives on
    expect(await h.redis.exists(h.keys.token(hashToken(second.token)))).toBe(1);

    const del = await as(admin(), 'DELETE', '/v1/api/token/carol');
    expect(del.statusCode).toBe(200);
    expect(await h.redis.exists(h.keys.token(hashToken(second.token)), h.keys.token(hashToken(third.token)), h.keys.user('carol'))).toBe(0);
    expect((await as(admin(), 'DELETE', '/v1/api/token/carol')).statusCode).toBe(404);
    expect(existsSync(`${h.config.varDir}/tokens/carol.json`)).toBe(false);
  });
});
