import { describe, expect, it } from 'vitest';
import { specDifferences } from '../../src/resources/agent-spec.js';

describe('specDifferences', () => {
  it('finds none between equal specs, whatever the key order', () => {
    expect(specDifferences({ a: 1, b: { c: [1, 2] } }, { b: { c: [1, 2] }, a: 1 })).toEqual([]);
  });

  it('names each differing leaf by its dotted path, sorted, with both values', () => {
    expect(specDifferences({ sink: 'file', channel: { capacity: 10, tx: 5 } }, { channel: { capacity: 20, tx: 5 }, sink: 'kafka' })).toEqual([
      { field: 'channel.capacity', existing: 10, requested: 20 },
      { field: 'sink', existing: 'file', requested: 'kafka' },
    ]);
  });

  it('shows a field on one side only as null on the other', () => {
    expect(specDifferences({ a: 1 }, { a: 1, jvm: { heap: '1g' } })).toEqual([{ field: 'jvm', existing: null, requested: { heap: '1g' } }]);
  });

  it('compares arrays whole, and a spec that is no object as (spec)', () => {
    expect(specDifferences({ o: ['-Xss1m'] }, { o: ['-Xss2m'] })).toEqual([{ field: 'o', existing: ['-Xss1m'], requested: ['-Xss2m'] }]);
    expect(specDifferences(null, 3)).toEqual([{ field: '(spec)', existing: null, requested: 3 }]);
  });
});
