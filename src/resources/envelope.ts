import { z } from 'zod';

/**
 * The envelope every answer wears: an error body (whatever raised it: a route, validation, the
 * router, auth) or a success body with code 0; and what the docs say about who may call a route.
 */

/** Every error answer. */
export const errorSchema = z
  .object({
    code: z.number().int().describe('stable error code, listed in docs/api.md'),
    error: z.string().describe('UPPER_SNAKE name of the code'),
    message: z.string(),
    details: z.record(z.string(), z.unknown()).optional(),
    requestId: z.string().optional().describe("the request's id (X-Request-Id: the caller's or a new one), as logged and audited"),
  })
  .describe('error');
export type ErrorBody = z.infer<typeof errorSchema>;

/** The error answers a route can give, by status. */
export const errors = (...statuses: number[]) => Object.fromEntries(statuses.map((s) => [s, errorSchema]));

/** 304 Not Modified (If-None-Match named the current ETag): no body. */
export const notModified = z.null().describe('Not Modified: no body');

/** A success body: code 0, a message, and the route's fields. */
export const ok = <T extends z.ZodRawShape>(shape: T) => z.object({ code: z.literal(0), message: z.string(), ...shape });

/** The permissions a route can ask for; 'none' is open. */
export type Access = 'none' | 'read' | 'operate' | 'admin';

/** What the docs say about who may call a route. */
export const access = (permission: Access) =>
  permission === 'none'
    ? { description: 'Open: no token.', security: [] }
    : { description: `Needs a control token (Authorization: Bearer <JWT>) whose role grants "${permission}".` };
