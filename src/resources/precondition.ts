/**
 * A change's preconditions (If-Match, If-None-Match: RFC 9110 13.1.1-2) as the revisions they
 * name; the headers are read in src/http/conditional.ts, the check runs under the table's lock.
 */
export interface Precondition {
  /** Go on only if the revision is one of these ('*': any existing). */
  ifMatch?: '*' | number[];
  /** Go on only if the revision is none of these ('*': only if nothing exists). */
  ifNoneMatch?: '*' | number[];
}

/** Whether a table at `revision` fails the precondition (412). */
export function fails(p: Precondition, revision: number): 'if-match' | 'if-none-match' | null {
  if (p.ifMatch !== undefined && p.ifMatch !== '*' && !p.ifMatch.includes(revision)) return 'if-match';
  if (p.ifNoneMatch !== undefined && (p.ifNoneMatch === '*' || p.ifNoneMatch.includes(revision))) return 'if-none-match';
  return null;
}

