import { describe, expect, it } from 'vitest';
import { countDuplicates, eventIdOf } from '../../../src/cli/flumectl/duplicates.js';

// Lines as kafka-console-consumer prints them with --property print.headers=true.
const line = (headers: string, value: string) => `${headers}\t${value}`;

describe('eventIdOf', () => {
  it("reads the eventId header, whose value may hold ':'", () => {
    expect(eventIdOf(line('username:billing,eventId:req-1:2,requestId:req-1', 'v'))).toBe('req-1:2');
    expect(eventIdOf(line('NO_HEADERS', 'v'))).toBeNull();
    expect(eventIdOf(line('username:billing', 'eventId:not-a-header'))).toBeNull();
    expect(eventIdOf(line('eventId:', 'v'))).toBeNull();
  });
});

describe('countDuplicates', () => {
  it('counts the records that repeat an event, and those without an id', () => {
    const c = countDuplicates([
      line('eventId:a:1', 'x'),
      line('eventId:a:2', 'y'),
      line('eventId:a:1', 'x'),
      line('eventId:a:1', 'x'),
      line('eventId:b:1', 'z'),
      line('eventId:b:1', 'z'),
      line('NO_HEADERS', 'old'),
      '',
    ]);
    expect(c).toEqual({ records: 7, events: 3, duplicates: 3, withoutId: 1, top: [{ eventId: 'a:1', copies: 3 }, { eventId: 'b:1', copies: 2 }] });
  });
  it('counts nothing in nothing', () => {
    expect(countDuplicates([])).toEqual({ records: 0, events: 0, duplicates: 0, withoutId: 0, top: [] });
  });
});
