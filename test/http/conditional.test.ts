import { describe, expect, it } from 'vitest';
import { etagOf, parseIfMatch } from '../../src/http/conditional.js';

describe('If-Match', () => {
  it('is absent, any (*), or the revisions its ETags name', () => {
    expect(parseIfMatch(undefined)).toBeUndefined();
    expect(parseIfMatch(' * ')).toBe('*');
    expect(parseIfMatch(etagOf(7))).toEqual([7]);
    expect(parseIfMatch('W/"7", "8"')).toEqual([7, 8]);
    expect(parseIfMatch(['"1"', '"2"'])).toEqual([1, 2]);
  });

  it.each(['', '7', '"7', '"-1"', '"1.5"', '"1234567890"', '*, "7"', '"7",', 'W/7'])('refuses %j with 400 INVALID_REQUEST', (h) => {
    expect(() => parseIfMatch(h)).toThrow(expect.objectContaining({ statusCode: 400, error: 'INVALID_REQUEST' }));
  });
});
