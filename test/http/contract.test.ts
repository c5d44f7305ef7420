import { describe, expect, it } from 'vitest';
import { completeResponses, KnownRoutes, sharedStatuses } from '../../src/http/contract.js';
import { errorSchema } from '../../src/resources/envelope.js';

describe('KnownRoutes', () => {
  const known = new KnownRoutes();
  for (const [m, url] of [['GET', '/v1/api/services'], ['HEAD', '/v1/api/services'], ['POST', '/v1/api/:db/:table/stop'], ['GET', '/v1/api/:db/:table'], ['DELETE', '/v1/api/:db/:table']]) known.add(m!, url!);

  it('names the methods a concrete path is served with', () => {
    expect(known.allowed('/v1/api/services')).toEqual(['GET', 'HEAD']);
    expect(known.allowed('/v1/api/shop/orders/stop')).toEqual(['POST']);
    expect(known.allowed('/v1/api/shop/orders')).toEqual(['DELETE', 'GET']);
  });

  it('knows no method for a path it does not serve', () => {
    expect(known.allowed('/v1/api/nope/at/all/here')).toEqual([]);
    expect(known.allowed('/elsewhere')).toEqual([]);
  });
});

describe('the statuses every operation declares', () => {
  it('depend on what the route takes: a token, names in the path, a body, an Idempotency-Key', () => {
    expect(sharedStatuses({ method: 'GET', url: '/healthz', schema: { security: [] } }).sort()).toEqual([400, 405, 408, 431, 500]);
    expect(sharedStatuses({ method: 'GET', url: '/v1/api/summary' }).sort()).toEqual([400, 401, 403, 405, 408, 421, 431, 500]);
    expect(sharedStatuses({ method: 'POST', url: '/v1/api/:db/:table/create', config: { idempotent: true } }).sort()).toEqual([400, 401, 403, 405, 408, 409, 413, 414, 421, 422, 431, 500]);
  });

  it('are completed with the one error schema, described from the catalogue, with their headers; 304 has no body', () => {
    const route = { method: 'GET', url: '/v1/api/services', schema: { response: { 200: {}, 304: {}, 503: errorSchema } } };
    const out = completeResponses({ 200: { type: 'object', description: 'Default Response' }, 304: { type: 'string', nullable: true }, 503: { type: 'object' } }, route);
    expect(Object.keys(out).sort()).toEqual(['200', '304', '400', '401', '403', '405', '408', '421', '431', '500', '503']);
    expect(out[304]).toMatchObject({ type: 'null', headers: { ETag: expect.any(Object) } });
    expect(out[304]).not.toHaveProperty('content');
    expect(out[405]).toMatchObject({ headers: { Allow: expect.any(Object), 'X-Request-Id': expect.any(Object) }, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } });
    expect(out[503]).toMatchObject({ headers: { 'Retry-After': expect.any(Object) }, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } });
    expect(out[503]!.description).toContain('REDIS_UNAVAILABLE (10103)');
    expect(out[405]!.description).toContain('METHOD_NOT_ALLOWED (10050)');
    expect(out[200]!.description).toBe('OK');
  });
});
