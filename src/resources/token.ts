import { z } from 'zod';
import { NAME_PATTERN } from './table.js';

/** Ingestion tokens: what a sender's token may reach, and how the API shows one. */

const name = NAME_PATTERN.source.slice(1, -1);
const scopeEntry = new RegExp(`^${name}(\\.${name})?$`);

/** POST /v1/api/token: the original's {username, token} plus expiry and scope. */
export const tokenRequestSchema = z
  .object({
    username: z.string().regex(/^[A-Za-z0-9_.@-]{1,64}$/, 'username: 1-64 of letters, digits, _ . @ -'),
    token: z
      .string()
      .min(32, 'token: at least 32 characters (or leave it out and a 43-character one is generated)')
      .max(256)
      .regex(/^[\x21-\x7e]+$/, 'token: printable ASCII without spaces')
      .optional(),
    ttlSeconds: z.number().int().min(1).max(10 * 365 * 86400).optional(),
    scope: z.array(z.string().regex(scopeEntry, 'scope entries are "db" or "db.table"')).min(1).max(100).optional(),
  })
  .strict();
export type TokenRequest = z.infer<typeof tokenRequestSchema>;

const scope = z.union([z.array(z.string()), z.literal('*')]);

export const tokenSetSchema = z.object({
  username: z.string(),
  token: z.string().optional().describe('only when generated: shown this once, never stored'),
  scope,
  expiresAt: z.string().nullable(),
  previousValidUntil: z.string().nullable().describe('the token it replaced stays valid until then (null: there was none)'),
});
export type TokenSetResult = z.infer<typeof tokenSetSchema>;

export const tokenListingSchema = z.object({
  username: z.string(),
  scope,
  createdAt: z.string().nullable(),
  expiresAt: z.string().nullable(),
  lastUsedAt: z.string().nullable(),
  previousValidUntil: z.string().nullable(),
});
export type TokenListing = z.infer<typeof tokenListingSchema>;
