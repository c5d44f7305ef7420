import { invalidRequest } from '../errors.js';
import type { Precondition } from '../resources/precondition.js';

/**
 * Conditional requests as RFC 9110 (section 13) says. A config's ETag is its desired revision,
 * `"7"`; the listing's is a weak digest. Entity-tags are opaque to clients: any well-formed one is
 * taken, and one that names nothing here simply does not match (412 on If-Match); only a header
 * that is not an entity-tag list is 400.
 */

export const etagOf = (revision: number) => `"${revision}"`;

interface EntityTag {
  weak: boolean;
  /** The quoted part, quotes included: `"7"`. */
  opaque: string;
}

// entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE; etagc = %x21 / %x23-7E / obs-text
const ENTITY_TAG = /^(W\/)?("[\x21\x23-\x7e\x80-\xff]*")$/;

/** `*` or the entity-tags of an If-Match / If-None-Match header; null when it is not one. */
function entityTags(header: string | string[]): '*' | EntityTag[] | null {
  const text = (Array.isArray(header) ? header.join(',') : header).trim();
  if (text === '*') return '*';
  // Empty list elements are allowed (RFC 9110 5.6.1) but at least one tag is needed.
  const items = text.split(',').map((t) => t.trim()).filter(Boolean);
  if (!items.length || items.length > 100) return null;
  const tags: EntityTag[] = [];
  for (const item of items) {
    const m = ENTITY_TAG.exec(item);
    if (!m) return null;
    tags.push({ weak: m[1] !== undefined, opaque: m[2]! });
  }
  return tags;
}

/**
 * The revisions a precondition header names, or '*'; undefined when absent; 400 when it is not an
 * entity-tag list. `strong`: a weak tag names nothing (If-Match); else it names its revision too.
 */
function revisionsNamed(header: string | string[] | undefined, name: string, example: string, strong: boolean): '*' | number[] | undefined {
  if (header === undefined) return undefined;
  const tags = entityTags(header);
  if (tags === null) throw invalidRequest(`${name} must be entity-tags, e.g. ${name}: ${example}, or *`);
  if (tags === '*') return '*';
  return tags.flatMap((t) => {
    const revision = /^"(\d{1,9})"$/.exec(t.opaque)?.[1];
    return revision !== undefined && !(strong && t.weak) ? [Number(revision)] : [];
  });
}

/**
 * What If-Match asks for: undefined when absent; '*' (any existing config); or the revisions it
 * names by strong comparison (a weak tag, or one that is not a revision, names none: an empty
 * list never matches). 400 when it is not an entity-tag list.
 */
export const parseIfMatch = (header: string | string[] | undefined) => revisionsNamed(header, 'If-Match', '"7" (the ETag of GET .../config)', true);

/** The revisions If-None-Match names by weak comparison (`W/"7"` names 7), or '*' (only if there is none yet). */
export const parseIfNoneMatch = (header: string | string[] | undefined) => revisionsNamed(header, 'If-None-Match', '"7"', false);

/** Both preconditions of a request's headers. */
export function preconditionOf(headers: Record<string, string | string[] | undefined>): Precondition {
  return { ifMatch: parseIfMatch(headers['if-match']), ifNoneMatch: parseIfNoneMatch(headers['if-none-match']) };
}

/**
 * Whether If-None-Match says the client's copy is current (answer 304 to a GET): `*`, or any of
 * its tags equal to `etag` by weak comparison. Absent: false. 400 when it is not an entity-tag list.
 */
export function noneMatch(header: string | string[] | undefined, etag: string): boolean {
  if (header === undefined) return false;
  const tags = entityTags(header);
  if (tags === null) throw invalidRequest('If-None-Match must be entity-tags, e.g. the ETag of the last answer, or *');
  if (tags === '*') return true;
  const mine = ENTITY_TAG.exec(etag)?.[2];
  return tags.some((t) => t.opaque === mine);
}
