import { invalidRequest } from '../errors.js';

/**
 * Optimistic concurrency for a config: its ETag is the desired revision, `"7"`. If-Match takes
 * one or more ETags (`"7"`, `W/"7"`, `"6", "7"`) or `*` (any existing config).
 */

export const etagOf = (revision: number) => `"${revision}"`;

/** What If-Match asks for: undefined when absent; '*'; or the revisions it names. 400 when it is not ETags. */
export function parseIfMatch(header: string | string[] | undefined): '*' | number[] | undefined {
  if (header === undefined) return undefined;
  const text = (Array.isArray(header) ? header.join(',') : header).trim();
  if (text === '*') return '*';
  const tags = text.split(',').map((t) => t.trim());
  const revisions = tags.map((t) => /^(?:W\/)?"(\d{1,9})"$/.exec(t)?.[1]);
  if (!text || revisions.some((r) => r === undefined)) {
    throw invalidRequest('If-Match must be the ETag of GET .../config, e.g. If-Match: "7" (or *)');
  }
  return revisions.map(Number);
}
