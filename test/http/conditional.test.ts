import { describe, expect, it } from 'vitest';
import { etagOf, noneMatch, parseIfMatch, parseIfNoneMatch, preconditionOf } from '../../src/http/conditional.js';
import { fails } from '../../src/resources/precondition.js';

describe('If-Match', () => {
  it('is absent, any (*), or the revisions its ETags name by strong comparison', () => {
    expect(parseIfMatch(undefined)).toBeUndefined();
    expect(parseIfMatch(' * ')).toBe('*');
    expect(parseIfMatch(etagOf(7))).toEqual([7]);
    expect(parseIfMatch('"7", "8"')).toEqual([7, 8]);
    expect(parseIfMatch(['"1"', '"2"'])).toEqual([1, 2]);
    expect(parseIfMatch('"7",')).toEqual([7]); // an empty list element is allowed
  });

  // RFC 9110 13.1.1: entity-tags are opaque; a well-formed one that names no revision (or a weak
  // one: If-Match compares strongly) matches nothing, which is 412 for the caller, never 400.
  it.each(['"stale-0"', 'W/"7"', '"1.5"', '"-1"', '"1234567890"', '""', ', "x"'])('takes %j as a tag that names no revision', (h) => {
    const got = parseIfMatch(h);
    expect(Array.isArray(got) && got.includes(7)).toBe(false);
    expect(got).not.toBe('*');
  });

  it.each(['', '7', '"7', 'stale', '*, "7"', 'W/7', '"a b"', '"x"y', 'w/"7"'])('refuses %j with 400 INVALID_REQUEST', (h) => {
    expect(() => parseIfMatch(h)).toThrow(expect.objectContaining({ statusCode: 400, error: 'INVALID_REQUEST' }));
  });
});

describe('If-None-Match', () => {
  it('matches by weak comparison, or * ; absent never matches', () => {
    expect(noneMatch(undefined, 'W/"abc"')).toBe(false);
    expect(noneMatch('W/"abc"', 'W/"abc"')).toBe(true);
    expect(noneMatch('"abc"', 'W/"abc"')).toBe(true);
    expect(noneMatch('"x", W/"abc"', 'W/"abc"')).toBe(true);
    expect(noneMatch('*', '"7"')).toBe(true);
    expect(noneMatch('"stale"', 'W/"abc"')).toBe(false);
  });

  it('refuses a header that is not entity-tags with 400', () => {
    expect(() => noneMatch('abc', '"7"')).toThrow(expect.objectContaining({ statusCode: 400 }));
  });
});

describe('a change\'s preconditions', () => {
  it('If-None-Match names revisions by weak comparison; * excludes any', () => {
    expect(parseIfNoneMatch(undefined)).toBeUndefined();
    expect(parseIfNoneMatch('*')).toBe('*');
    expect(parseIfNoneMatch('W/"7", "8", "other"')).toEqual([7, 8]);
    expect(() => parseIfNoneMatch('7')).toThrow(expect.objectContaining({ statusCode: 400 }));
  });

  it('fails when If-Match does not name the revision, or If-None-Match does (or is *)', () => {
    expect(fails({}, 3)).toBeNull();
    expect(fails({ ifMatch: [3] }, 3)).toBeNull();
    expect(fails({ ifMatch: '*' }, 3)).toBeNull();
    expect(fails({ ifMatch: [] }, 3)).toBe('if-match');
    expect(fails({ ifNoneMatch: '*' }, 3)).toBe('if-none-match');
    expect(fails({ ifNoneMatch: [3] }, 3)).toBe('if-none-match');
    expect(fails({ ifNoneMatch: [2] }, 3)).toBeNull();
    expect(preconditionOf({ 'if-match': '"3"', 'if-none-match': 'W/"2"' })).toEqual({ ifMatch: [3], ifNoneMatch: [2] });
  });
});
