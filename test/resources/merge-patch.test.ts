import { describe, expect, it } from 'vitest';
import { mergePatch } from '../../src/resources/merge-patch.js';

// PATCH .../config: RFC 7396 over the desired spec.
describe('JSON Merge Patch', () => {
  it('merges objects, replaces everything else, and null removes a key', () => {
    const spec = { sink: 'kafka', options: { topic: 't', batchSize: 100 }, channel: { capacity: 1000 }, jvm: { heap: '64m' } };
    expect(mergePatch(spec, { options: { batchSize: 500 }, jvm: null })).toEqual({ sink: 'kafka', options: { topic: 't', batchSize: 500 }, channel: { capacity: 1000 } });
    expect(mergePatch(spec, { options: { topic: null } })).toEqual({ ...spec, options: { batchSize: 100 } });
  });

  it('replaces arrays and scalars whole, and a non-object patch replaces the target (RFC 7396 examples)', () => {
    expect(mergePatch({ a: [1, 2] }, { a: [3] })).toEqual({ a: [3] });
    expect(mergePatch({ a: 'b' }, 'c')).toBe('c');
    expect(mergePatch('x', { a: { b: null, c: 1 } })).toEqual({ a: { c: 1 } });
    expect(mergePatch({ a: 1 }, {})).toEqual({ a: 1 });
  });
});
