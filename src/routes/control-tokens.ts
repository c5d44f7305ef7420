import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { claimsSchema } from '../auth/roles.js';
import type { ControlTokenRevocations } from '../auth/revocations.js';
import { invalidRequest } from '../errors.js';
import type { Authorize } from '../http/auth.js';
import { access, errors, ok } from '../resources/envelope.js';

/** The longest a control token lives (the token CLI's --ttl limit): a revocation by jti alone lasts this long. */
export const MAX_CONTROL_TOKEN_DAYS = 365;

const revokeBodySchema = z
  .strictObject({
    jti: z.string().min(8).max(128).optional().describe("the token's id (its jti claim)"),
    token: z.string().min(1).max(8192).optional().describe('the token itself: its jti and expiry are read from it'),
  })
  .refine((b) => (b.jti === undefined) !== (b.token === undefined), 'send either jti or token');

/** Revoking one control token without rotating the signing secret: admin, all dbs. */
export async function controlTokenRoutes(
  fastify: FastifyInstance,
  opts: { revocations: ControlTokenRevocations; authorize: Authorize },
): Promise<void> {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  app.post('/v1/api/control-tokens/revoke', {
    onRequest: opts.authorize('admin', { allDbs: true }),
    schema: {
      tags: ['control tokens'],
      summary: 'Revoke one control token (by its jti, or the token itself) on every API process sharing the Redis',
      ...access('admin'),
      body: revokeBodySchema,
      response: { 200: ok({ jti: z.string(), revokedUntil: z.string() }), ...errors(400, 401, 403, 503) },
    },
    handler: async (req) => {
      let jti: string;
      let until: number;
      if (req.body.token !== undefined) {
        let claims;
        try {
          claims = claimsSchema.parse(app.jwt.verify(req.body.token));
        } catch {
          throw invalidRequest('token: not a valid, unexpired control token of this service (an expired one needs no revoking)');
        }
        ({ jti, exp: until } = claims);
      } else {
        jti = req.body.jti!;
        until = Math.floor(Date.now() / 1000) + MAX_CONTROL_TOKEN_DAYS * 86400;
      }
      await opts.revocations.revoke(jti, until);
      return { code: 0 as const, message: `control token ${jti} revoked`, jti, revokedUntil: new Date(until * 1000).toISOString() };
    },
  });
}
