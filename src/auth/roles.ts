import { z } from 'zod';
import { NAME_PATTERN } from '../resources/table.js';

/**
 * Control-API roles. viewer: status and listing. operator: the agent lifecycle too.
 * admin: everything, ingestion tokens included.
 */
export const ROLES = ['admin', 'operator', 'viewer'] as const;
export type Role = (typeof ROLES)[number];
export type Permission = 'read' | 'operate' | 'admin';

const GRANTS: Record<Role, readonly Permission[]> = {
  admin: ['read', 'operate', 'admin'],
  operator: ['read', 'operate'],
  viewer: ['read'],
};

export function roleAllows(role: Role, permission: Permission): boolean {
  return GRANTS[role].includes(permission);
}

/**
 * The claims of a control token. `dbs` limits it to those databases; absent means all. Every
 * token expires (`exp`) and has an id (`jti`) by which it can be revoked alone.
 */
export const claimsSchema = z.object({
  sub: z.string().min(1).max(128),
  role: z.enum(ROLES),
  dbs: z.array(z.string().regex(NAME_PATTERN)).min(1).optional(),
  jti: z.string().min(8).max(128),
  exp: z.number().int(),
});
/** What the token CLI (and tests) put in a token besides jti and exp, which signing adds. */
export const mintClaimsSchema = claimsSchema.omit({ jti: true, exp: true });
export type Principal = z.infer<typeof claimsSchema>;

export function dbAllowed(p: Principal, db: string): boolean {
  return !p.dbs || p.dbs.includes(db);
}

/** An ingestion-token scope ("*" or "db"/"db.table" entries) within what the principal may reach. */
export function scopeAllowed(p: Principal, scope: string[] | '*'): boolean {
  if (!p.dbs) return true;
  return scope !== '*' && scope.every((s) => dbAllowed(p, s.split('.')[0]!));
}
