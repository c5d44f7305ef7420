import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { scopeAllowed } from '../auth/roles.js';
import { forbidden } from '../errors.js';
import type { Authorize } from '../http/auth.js';
import type { TokenService } from '../tokens/token-service.js';
import { tokenRequestSchema } from '../resources/token.js';
import { access, errors, ok } from '../resources/envelope.js';
import { tokenListingSchema, tokenSetSchema } from '../resources/token.js';

const usernameParamSchema = z.object({
  username: z.string().regex(/^[A-Za-z0-9_.@-]{1,64}$/, 'username: 1-64 of letters, digits, _ . @ -'),
});

/** Ingestion tokens (what senders show the gateway): admin only. */
export async function tokenRoutes(fastify: FastifyInstance, opts: { tokens: TokenService; authorize: Authorize }): Promise<void> {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const { tokens } = opts;
  const onRequest = opts.authorize('admin');
  const tags = ['ingestion tokens'];

  app.post('/v1/api/token', {
    onRequest,
    schema: {
      tags,
      summary: "Set (or generate) a user's ingestion token; the one it replaces stays valid for the grace period. A dbs-limited control token may set only users whose current and new scope are within its dbs",
      ...access('admin'),
      body: tokenRequestSchema,
      response: { 200: ok(tokenSetSchema.shape), ...errors(400, 401, 403, 409, 503) },
    },
    handler: async (req) => {
      const dbs = req.principal!.dbs;
      if (!scopeAllowed(req.principal!, req.body.scope ?? '*')) {
        throw forbidden(`this control token is limited to db ${dbs!.join(', ')}: give a scope within them`);
      }
      // Rotating or replacing a user needs its current scope within the caller's dbs too.
      const r = await tokens.set(req.body, (current) => scopeAllowed(req.principal!, current));
      const note = r.token ? '; the token is shown only now: keep it' : '';
      return { code: 0 as const, message: `token set for ${r.username}${note}`, ...r };
    },
  });

  app.get('/v1/api/token', {
    onRequest,
    schema: {
      tags,
      summary: 'Users with tokens: scope, expiry, last use (never secrets); a dbs-limited control token sees users within its dbs',
      ...access('admin'),
      response: { 200: ok({ users: z.array(tokenListingSchema) }), ...errors(401, 403, 503) },
    },
    handler: async (req) => {
      const users = (await tokens.list()).filter((u) => scopeAllowed(req.principal!, u.scope));
      return { code: 0 as const, message: `${users.length} user(s)`, users };
    },
  });

  app.delete('/v1/api/token/:username', {
    onRequest,
    schema: {
      tags,
      summary: 'Revoke every token of the user, at once',
      ...access('admin'),
      params: usernameParamSchema,
      response: { 200: ok({ username: z.string() }), ...errors(400, 401, 403, 404, 503) },
    },
    handler: async (req) => {
      const scope = await tokens.scopeOf(req.params.username);
      if (scope !== null && !scopeAllowed(req.principal!, scope)) {
        throw forbidden(`${req.params.username}'s token reaches dbs this control token is not limited to`);
      }
      await tokens.revoke(req.params.username);
      return { code: 0 as const, message: `tokens of ${req.params.username} revoked`, username: req.params.username };
    },
  });
}
