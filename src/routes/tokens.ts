import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { invalidRequest } from '../errors.js';
import type { Authorize } from '../http/auth.js';
import type { TokenService } from '../tokens/token-service.js';

export const usernameParamSchema = z.object({ username: z.string().regex(/^[A-Za-z0-9_.@-]{1,64}$/) });

/** Ingestion tokens: admin only. */
export async function tokenRoutes(app: FastifyInstance, opts: { tokens: TokenService; authorize: Authorize }): Promise<void> {
  const { tokens } = opts;
  const admin = { onRequest: opts.authorize('admin') };

  app.post('/v1/api/token', admin, async (req) => {
    const r = await tokens.set(tokens.parseRequest(req.body));
    const note = r.token ? '; the token is shown only now: keep it' : '';
    return { code: 0, message: `token set for ${r.username}${note}`, ...r };
  });

  app.get('/v1/api/token', admin, async () => {
    const users = await tokens.list();
    return { code: 0, message: `${users.length} user(s)`, users };
  });

  app.delete('/v1/api/token/:username', admin, async (req) => {
    const p = usernameParamSchema.safeParse(req.params);
    if (!p.success) throw invalidRequest('username: 1-64 of letters, digits, _ . @ -');
    await tokens.revoke(p.data.username);
    return { code: 0, message: `tokens of ${p.data.username} revoked`, username: p.data.username };
  });
}
