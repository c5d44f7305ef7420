import fastifyJwt from '@fastify/jwt';
import type { FastifyInstance, FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import { claimsSchema, dbAllowed, roleAllows, type Permission, type Principal } from '../auth/roles.js';
import { forbidden, unauthorized } from '../errors.js';
import type { ControlTokenRevocations } from '../auth/revocations.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
}

/**
 * Builds the hook a route declares: `onRequest: authorize('operate')`. `allDbs`: the route acts
 * on every db at once (reconcile, revoking control tokens), so a token limited to some dbs gets 403.
 */
export type Authorize = (permission: Permission, opts?: { allDbs?: boolean }) => onRequestAsyncHookHandler;

const JWT_MESSAGES: Record<string, string> = {
  FST_JWT_NO_AUTHORIZATION_IN_HEADER: 'send Authorization: Bearer <token>',
  FST_JWT_BAD_REQUEST: 'the Authorization header must be "Bearer <token>"',
  FST_JWT_AUTHORIZATION_TOKEN_EXPIRED: 'the token has expired',
  FST_JWT_AUTHORIZATION_TOKEN_INVALID: 'the token is not valid',
  FST_JWT_AUTHORIZATION_TOKEN_UNTRUSTED: 'the token is not valid',
};

/**
 * Registers @fastify/jwt (HS256 with `secret`) and returns the authorizer.
 * 401: no token, a malformed, forged, expired or revoked one, or claims of the wrong shape
 * (every token must carry exp and jti).
 * 403: a valid token whose role lacks the permission, or that is limited to other dbs
 * (checked against the route's :db).
 */
export function registerAuth(app: FastifyInstance, secret: string, revocations: Pick<ControlTokenRevocations, 'isRevoked'>): Authorize {
  // Verified tokens are cached (LRU, bounded by each token's own expiry): dashboards poll all day with one.
  void app.register(fastifyJwt, { secret, sign: { algorithm: 'HS256' }, verify: { algorithms: ['HS256'], cache: 1000, cacheTTL: 60_000 } });
  return (permission, opts = {}) => async (req: FastifyRequest) => {
    let payload: unknown;
    try {
      payload = await req.jwtVerify();
    } catch (e) {
      const code = (e as { code?: string }).code ?? '';
      throw unauthorized(JWT_MESSAGES[code] ?? 'the token is not valid');
    }
    const claims = claimsSchema.safeParse(payload);
    if (!claims.success) {
      const fields = [...new Set(claims.error.issues.map((i) => String(i.path[0])))].join(', ');
      throw unauthorized(`the token's claims are not valid (${fields}); mint one with: npm run -s token -- --role <role>`);
    }
    const principal = claims.data;
    if (revocations.isRevoked(principal.jti)) throw unauthorized('the token has been revoked');
    // Known from here on, also when refused below: the audit trail names who was refused.
    req.principal = principal;
    if (!roleAllows(principal.role, permission)) {
      throw forbidden(`role ${principal.role} may not do this (needs ${permission})`);
    }
    const db = (req.params as { db?: unknown } | undefined)?.db;
    if (typeof db === 'string' && !dbAllowed(principal, db)) {
      throw forbidden(`this token is limited to db ${principal.dbs?.join(', ')}`);
    }
    if (opts.allDbs && principal.dbs) throw forbidden(`this acts on every db; the token is limited to db ${principal.dbs.join(', ')}`);
  };
}
