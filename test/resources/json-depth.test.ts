import { describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH, nestsDeeperThan, parseJsonBounded } from '../../src/resources/json-depth.js';

const nested = (levels: number, open = '{"a":', close = '}') => `${open.repeat(levels)}1${close.repeat(levels)}`;

describe('nesting depth', () => {
  it('counts objects and arrays inside each other, not scalars or siblings', () => {
    expect(nestsDeeperThan(5, 0)).toBe(false);
    expect(nestsDeeperThan(null, 0)).toBe(false);
    expect(nestsDeeperThan({}, 0)).toBe(true);
    expect(nestsDeeperThan({ a: 1, b: 'x' }, 1)).toBe(false);
    expect(nestsDeeperThan({ a: [1, { b: 2 }] }, 2)).toBe(true);
    expect(nestsDeeperThan({ a: [1, { b: 2 }] }, 3)).toBe(false);
    expect(nestsDeeperThan(Array.from({ length: 10_000 }, () => ({ a: 1 })), 2)).toBe(false);
  });

  it('takes MAX_JSON_DEPTH levels and refuses one more, by message', () => {
    expect(parseJsonBounded(nested(MAX_JSON_DEPTH))).toBeTypeOf('object');
    expect(() => parseJsonBounded(nested(MAX_JSON_DEPTH + 1))).toThrow(`nested more than ${MAX_JSON_DEPTH} levels deep`);
    expect(() => parseJsonBounded(nested(MAX_JSON_DEPTH + 1, '[', ']'))).toThrow(/nested more than/);
    expect(() => parseJsonBounded('{')).toThrow(SyntaxError);
  });

  it('walks 100,000 levels without overflowing the stack', () => {
    expect(parseJsonBounded.bind(null, nested(100_000))).toThrow(/nested more than 64/);
    expect(nestsDeeperThan(JSON.parse(nested(100_000, '[', ']')) as unknown, 100_001)).toBe(false);
  });
});
