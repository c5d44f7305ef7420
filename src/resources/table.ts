import { z } from 'zod';

/**
 * db and table names: lower-case letters, digits and '_', starting with a letter or digit,
 * 1-48 characters. No '-', so `flume-<db>-<table>` is unique for every pair; no '.', '/', ':'
 * or spaces, so a name can be used in a path, a Redis key or a supervisor section as it is.
 */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9_]{0,47}$/;

const name = (what: string) =>
  z.string().regex(NAME_PATTERN, `${what} must match ${NAME_PATTERN.source} (lower-case letters, digits, '_'; 1-48 chars)`);

/** Reserved as db names: /v1/api/token/... is the token API, /v1/api/quotas/... the quotas'. */
export const RESERVED_DBS = ['token', 'quotas'];

export const tableParamsSchema = z.object({
  db: name('db').refine((d) => !RESERVED_DBS.includes(d), { message: `db may not be ${RESERVED_DBS.join(', ')} (reserved)` }),
  table: name('table'),
});
export type TableRef = z.infer<typeof tableParamsSchema>;

export function programName({ db, table }: TableRef): string {
  return `flume-${db}-${table}`;
}

/** The inverse of programName; null for programs that are not agents (the API, Redis, ...). */
export function parseProgramName(program: string): TableRef | null {
  const m = /^flume-([^-]+)-([^-]+)$/.exec(program);
  if (!m || !NAME_PATTERN.test(m[1]!) || !NAME_PATTERN.test(m[2]!)) return null;
  return { db: m[1]!, table: m[2]! };
}
